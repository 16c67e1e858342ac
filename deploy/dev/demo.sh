#!/usr/bin/env bash
# `make demo`: the relay doing its main job on this machine.
#
# Starts relay-worker with deploy/relay-worker.example.toml against the
# RabbitMQ on 127.0.0.1:5672, publishes sample events as the Moodle plugin
# does (plus one bad one), and shows them arriving downstream and the bad one
# in the dead-letter queue with its reason. Ctrl-C stops the worker cleanly.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/dev/lib.sh

BIN="${RELAY_WORKER_BIN:-target/debug/relay-worker}"
CONFIG=deploy/relay-worker.example.toml
LISTEN="${RELAY_WORKER_LISTEN:-127.0.0.1:9464}"
[ -x "$BIN" ] || fail "$BIN is missing: run 'make build' first"
port_open "${LISTEN##*:}" && fail "$LISTEN is in use (another relay-worker?); set RELAY_WORKER_LISTEN=127.0.0.1:PORT"
http_get() { php -r 'echo @file_get_contents($argv[1]);' "http://$LISTEN$1"; }

say "1. Starting relay-worker ($CONFIG, site lms-demo); JSON logs go to target/demo-worker.log"
mkdir -p target
RELAY_WORKER_LISTEN="$LISTEN" "$BIN" --config "$CONFIG" 2>target/demo-worker.log &
WORKER=$!
stop_worker() {
    trap - INT TERM
    echo
    say "Stopping relay-worker (SIGTERM): it finishes in-flight events, then closes"
    kill -TERM "$WORKER" 2>/dev/null || true
    if wait "$WORKER"; then say "relay-worker stopped cleanly"; else say "relay-worker exited with status $?"; fi
    exit 0
}
trap stop_worker INT TERM
for _ in $(seq 1 100); do
    [ "$(http_get /readyz)" = "ready" ] && break
    kill -0 "$WORKER" 2>/dev/null || { cat target/demo-worker.log >&2; fail "relay-worker did not start"; }
    sleep 0.1
done
say "   relay-worker is ready: it declared moodle.ingest, relay.ingest.lms-demo, moodle.events, delay queues and relay.dlq"

say "2. A downstream system (say, the HR system) binds its own queue to the events it wants"
php deploy/dev/demo-client.php setup

say "3. Moodle's plugin publishes four events and, by mistake, one bad one"
php deploy/dev/demo-client.php publish

say "4. The relayed events arrive downstream, validated and in order"
php deploy/dev/demo-client.php show 4

say "5. The bad event did not stop anything: it waits in relay.dlq with its reason (shown above)"
say "6. Metrics: http://$LISTEN/metrics (also /healthz, /readyz). Now:"
http_get /metrics | grep -E '^relay_events_(consumed|published|dead_lettered)_total' | sed 's/^/    /'

say "relay-worker keeps running (logs: target/demo-worker.log). Press Ctrl-C to stop it."
wait "$WORKER"
