# Moodle Event Relay: the two commands a newcomer needs are `make demo` and
# `make test` (see README.md). Each installs or starts what it needs.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
RELAY_WORKER_BIN := $(CURDIR)/target/debug/relay-worker
PHP_SOURCES = $(shell find moodle-plugin tests/php tests/moodle -name '*.php' 2>/dev/null)

.PHONY: help demo test bench test-scale deps rust rabbitmq php nginx lint lint-moodle test-rust test-php build \
	check-deploy image broker-tools check-broker-users

help:
	@echo "make demo   run the relay's main job on a local RabbitMQ"
	@echo "make test   run every test: Rust, PHP and schema checks (CI runs this)"
	@echo "make lint   rustfmt, clippy and php -l only"
	@echo "make check-deploy  every file in deploy/ checked with its real tool (part of make test)"
	@echo "make image  the container image, built here without a registry (buildah)"
	@echo "make bench  relay-worker against a raw forwarder (EVENTS=100000 ROUNDS=3 BACKLOG=1000000)"
	@echo "make test-scale  1,000 sites on 3 worker processes and a private RabbitMQ node (by hand, a few minutes)"

## Set-up: each step reuses what is there and installs or starts what is not.
deps: rust rabbitmq php broker-tools

rust:
	@deploy/dev/ensure-rust.sh

rabbitmq:
	@deploy/dev/ensure-rabbitmq.sh

php:
	@deploy/dev/ensure-php.sh

build: rust
	$(CARGO) build --workspace --locked

nginx:
	@deploy/check/nginx.sh

# jq, for deploy/rabbitmq/import.sh (the broker-user tests run it).
broker-tools:
	@command -v jq >/dev/null 2>&1 || { . deploy/dev/lib.sh; apt_install jq; }

## Tests.
test: deps lint test-rust test-php check-deploy
	@echo "==> all tests passed"

lint: rust php
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@for f in $(PHP_SOURCES); do php -l "$$f" >/dev/null || exit 1; done
	@echo "==> php -l: $(words $(PHP_SOURCES)) files clean"

# The proxy-limit test runs the real nginx: installed (and checked) first; the
# broker-user tests import users with deploy/rabbitmq/import.sh.
test-rust: rust rabbitmq nginx broker-tools
	$(CARGO) test --workspace --locked

# The PHP tests publish to the real RabbitMQ and validate what the PHP code
# builds with the Rust validator.
test-php: php build rabbitmq
	RELAY_WORKER_BIN=$(RELAY_WORKER_BIN) phpunit -c tests/php/phpunit.xml

# Moodle coding style of the plugin. Needs phpcs >= 3.10 with moodle-cs, which
# no package registry this project uses ships: PHPCS_INSTALLED_PATHS lists the
# folders of moodle-cs, PHPCSUtils, PHPCSExtra and PHPCompatibility.
PHPCS ?= phpcs
lint-moodle:
	$(PHPCS) --runtime-set installed_paths "$(PHPCS_INSTALLED_PATHS)" --standard=moodle \
		--extensions=php moodle-plugin tests/php tests/moodle

## Deployment files (deploy/), each checked with its real tool: systemd-analyze,
## nginx -t, promtool (rule unit tests, and a real Prometheus scraping a private
## RabbitMQ node), kubernetes-validate and the KEDA/ServiceMonitor CRD schemas,
## docker-compose config, the image built with buildah and run, and the broker
## users' permissions on a scratch vhost. README.md, "Running in production".
check-deploy: build rabbitmq php
	deploy/check/systemd.sh
	deploy/check/nginx.sh
	deploy/check/prometheus.sh
	RELAY_WORKER_BIN=$(RELAY_WORKER_BIN) deploy/check/kubernetes.sh
	deploy/check/compose.sh
	deploy/check/container.sh

# The broker users alone, with shellcheck of their scripts (make test runs
# their tests within test-rust).
check-broker-users: rust rabbitmq
	@deploy/rabbitmq/check.sh

image: rust
	$(CARGO) build --release --locked -p relay-worker -p dlq-replayer
	deploy/container/build-local.sh

## The product's main job.
demo: deps build
	@RELAY_WORKER_BIN=$(RELAY_WORKER_BIN) deploy/dev/demo.sh

## Benchmark: figures, not pass/fail (see README.md, "Performance").
EVENTS ?= 100000
ROUNDS ?= 3
BACKLOG ?= 1000000
PREFETCH ?= 200
bench: rust rabbitmq
	$(CARGO) build --release --locked -p relay-worker -p relay-bench
	target/release/relay-bench --events $(EVENTS) --rounds $(ROUNDS) --backlog $(BACKLOG) --prefetch $(PREFETCH)

## Scale run, by hand (not part of `make test`): 1,000 sites on three release
## worker processes against a private RabbitMQ node with a high file limit;
## prints set-up time, RSS per worker and the broker's memory and descriptors.
test-scale: rust rabbitmq
	$(CARGO) test --release --locked -p relay-worker --test scale -- --ignored --nocapture
