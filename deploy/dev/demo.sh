#!/usr/bin/env bash
# `make demo`: shows the relay doing its main job on this machine.
#
# Today the relay pipeline (consume from moodle.ingest, validate, publish to
# moodle.events) is not built yet; this shows the event contract at work and
# says what is missing. It grows into the end-to-end demo with the worker.
set -euo pipefail
cd "$(dirname "$0")/../.."
. deploy/dev/lib.sh

BIN="${RELAY_WORKER_BIN:-target/debug/relay-worker}"
[ -x "$BIN" ] || fail "$BIN is missing: run 'make build' first"

say "1. The event contract: every valid example event passes the schema check"
"$BIN" validate schemas/fixtures/valid/*.json

say "2. Bad events are refused with a precise reason (this is what will land in the DLQ)"
for f in sequence-not-padded site-id-with-dot unknown-type password-in-snapshot not-json; do
    "$BIN" validate "schemas/fixtures/invalid/$f.json" 2>/dev/null || true
done

say "3. The Moodle plugin's PHP envelope builder makes an event; the Rust validator checks it"
php deploy/dev/demo-build-event.php | tee /dev/stderr | "$BIN" validate -

cat >&2 <<'MSG'

==> Not built yet: relay-worker's consume -> validate -> publish pipeline.
    When it exists, `make demo` starts it against the RabbitMQ on 127.0.0.1:5672,
    publishes sample events and one bad one to moodle.ingest, and shows them
    arriving downstream and in relay.dlq.
MSG
