#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers on 127.0.0.1:5672 (guest/guest), as the
# tests and the demo expect: reuses a running one, else installs Debian's
# rabbitmq-server if needed and starts it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PORT=5672
if port_open "$PORT"; then
    say "RabbitMQ: already listening on 127.0.0.1:$PORT"
    exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
    say "RabbitMQ: not installed; the tests need a real broker, installing Debian's rabbitmq-server"
    apt_install rabbitmq-server
fi

# The package may have started it already (on systemd machines).
if ! port_open "$PORT"; then
    if [ -d /run/systemd/system ]; then
        say "RabbitMQ: starting the rabbitmq-server service"
        as_root systemctl start rabbitmq-server
    else
        # No systemd (containers, CI sandboxes): start the broker as a daemon.
        say "RabbitMQ: starting it in the background (rabbitmq-server -detached)"
        as_root rabbitmq-server -detached
    fi
fi

say "RabbitMQ: waiting for it to accept connections (up to 120 s)"
for _ in $(seq 1 120); do
    if port_open "$PORT"; then
        # The port opens before the broker has finished booting its apps.
        if as_root rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1; then
            say "RabbitMQ: ready on 127.0.0.1:$PORT"
            exit 0
        fi
    fi
    sleep 1
done
fail "RabbitMQ did not start within 120 s; see /var/log/rabbitmq/ for why"
