#!/usr/bin/env bash
# Checks the local trial in deploy/compose/ without pulling any image (this
# machine reaches no container registry):
#   1. `docker-compose config` (Debian's docker-compose 1.29) parses and
#      validates compose.yaml, and `docker compose config` too when the v2
#      plugin is installed;
#   2. check-jsonschema validates it against the current Compose
#      Specification schema (its vendored copy; from PyPI, in a venv);
#   3. every file or folder it mounts from the repository exists;
#   4. promtool (from Debian's prometheus package, unpacked, not installed:
#      no service starts) checks deploy/prometheus/prometheus.yml, which
#      compose mounts, with the alert rules it loads, and that it scrapes the
#      worker and RabbitMQ by their compose service names;
#   5. the RabbitMQ part for real: a scratch RabbitMQ node of this machine's
#      RabbitMQ (own name, ports and data under a temp dir) boots with
#      rabbitmq.conf and enabled_plugins as compose mounts them and with the
#      definitions folder as compose fills it (init-secrets.sh's users.json
#      and deploy/rabbitmq/definitions.json); then the topology, the users
#      (no guest) and the Prometheus endpoint are checked, and relay-worker,
#      configured as compose configures it (example config, URL from the
#      secret file), must become ready on it: it logs in with the generated
#      password and redeclares every queue with the arguments loaded at boot.
# Run time: about 25 s (the first run also installs docker-compose, a venv
# and promtool: a minute more). Exit status 0 when every check passed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/deploy/dev/lib.sh"
COMPOSE_DIR="$(cd "${1:-$ROOT/deploy/compose}" && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/moodle-event-relay"
CHECK_JSONSCHEMA_VERSION=0.39.0

. "$ROOT/deploy/check/lib.sh"

TMP="$(mktemp -d)"
NODE=""
WORKER=""
# The processes of the scratch node (the wrapper's shell and the Erlang VM).
node_pids() {
    local environ pid
    for environ in /proc/[0-9]*/environ; do
        pid="${environ#/proc/}"
        pid="${pid%/environ}"
        [ "$pid" != "$$" ] || continue
        { tr '\0' '\n' <"$environ"; } 2>/dev/null | grep -qx "RABBITMQ_NODENAME=$NODE" && echo "$pid"
    done
    return 0
}
cleanup() {
    if [ -n "$WORKER" ]; then
        kill -TERM "$WORKER" 2>/dev/null || true
        wait "$WORKER" 2>/dev/null || true
    fi
    if [ -n "$NODE" ]; then
        timeout 60 rabbitmqctl -n "$NODE" stop >/dev/null 2>&1 || true
        # Still there (it had not booted yet, or would not stop): killed. Only
        # processes whose environment names this node, never the machine's broker.
        local pids
        pids="$(node_pids)"
        [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

# --- tools -----------------------------------------------------------------
need=()
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v rabbitmq-server >/dev/null 2>&1 || need+=(rabbitmq-server)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"

VENV="$CACHE/check-venv"
if ! "$VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "$CHECK_JSONSCHEMA_VERSION"; then
    mkdir -p "$CACHE"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
    say "installing check-jsonschema $CHECK_JSONSCHEMA_VERSION into $VENV"
    "$VENV/bin/pip" install -q "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
fi

ensure_prometheus_tools
PROMTOOL="$PROMETHEUS_TOOLS/usr/bin/promtool"

# --- 1. compose config -----------------------------------------------------------
cd "$COMPOSE_DIR"
if out="$(docker-compose -f compose.yaml config -q 2>&1)" && [ -z "$out" ]; then
    pass "docker-compose $(docker-compose version --short 2>/dev/null) config: compose.yaml is valid"
else
    flunk "docker-compose config: $out"
fi
if docker compose version >/dev/null 2>&1; then
    if out="$(docker compose -f compose.yaml config -q 2>&1)"; then
        pass "docker compose $(docker compose version --short) config: compose.yaml is valid"
    else
        flunk "docker compose config: $out"
    fi
fi

# --- 2. the Compose Specification schema -------------------------------------------
if out="$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml 2>&1)"; then
    pass "check-jsonschema $CHECK_JSONSCHEMA_VERSION: compose.yaml matches the Compose Specification schema"
else
    flunk "check-jsonschema (Compose Specification): $out"
fi

# --- 3. mounted paths ----------------------------------------------------------
# docker-compose config prints every bind mount and secret with an absolute
# host path. secrets/ is made by init-secrets.sh, not committed.
mounts="$(docker-compose -f compose.yaml config 2>/dev/null |
    sed -nE 's#^ *- (/[^:]+):/.*#\1#p; s#^ *file: (/.*)#\1#p' | sort -u || true)"
missing=()
count=0
for path in $mounts; do
    count=$((count + 1))
    case "$path" in "$COMPOSE_DIR"/secrets/*) continue ;; esac
    [ -e "$path" ] || missing+=("${path#"$ROOT"/}")
done
if [ "$count" -gt 0 ] && [ ${#missing[@]} -eq 0 ]; then
    pass "all $count host paths compose.yaml mounts exist (secrets/ comes from init-secrets.sh)"
else
    flunk "compose.yaml mounts what does not exist: ${missing[*]:-nothing found to check}"
fi

# --- 4. Prometheus configuration and rules -------------------------------------
# compose mounts deploy/prometheus/ as /etc/prometheus/: its prometheus.yml
# loads alerts.yml beside it, and must scrape the services by their compose
# names and ports.
PROMETHEUS_YML="$ROOT/deploy/prometheus/prometheus.yml"
if [ ! -f "$PROMETHEUS_YML" ]; then
    flunk "deploy/prometheus/prometheus.yml, which compose mounts for Prometheus, does not exist"
elif out="$("$PROMTOOL" check config "$PROMETHEUS_YML" 2>&1)"; then
    rule_files="$(grep -c '^  SUCCESS: .*rules found' <<<"$out" || true)"
    pass "promtool $("$PROMTOOL" --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p'): deploy/prometheus/prometheus.yml and its $rule_files rule file(s) are valid"
else
    flunk "promtool check config deploy/prometheus/prometheus.yml: $out"
fi
services="$(docker-compose -f compose.yaml config --services 2>/dev/null || true)"
for target in relay-worker:9464 rabbitmq:15692; do
    service="${target%%:*}"
    if ! grep -qx "$service" <<<"$services"; then
        flunk "prometheus.yml scrapes $target but compose.yaml has no service $service"
    elif [ -f "$PROMETHEUS_YML" ] && grep -qE "targets:.*[\"']${target}[\"']" "$PROMETHEUS_YML"; then
        pass "Prometheus scrapes compose's $service at $target"
    else
        flunk "deploy/prometheus/prometheus.yml does not scrape $target, compose's $service"
    fi
done

# --- 5. RabbitMQ as compose configures it, and the worker on it --------------------
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        port_open "$port" || { echo "$port"; return; }
    done
}
"$COMPOSE_DIR/init-secrets.sh" "$TMP/secrets" >/dev/null
mkdir -p "$TMP/node/definitions.d" "$TMP/node/mnesia" "$TMP/node/log"
# The folder compose mounts at /etc/rabbitmq/definitions.d, with the same names.
cp "$TMP/secrets/users.json" "$TMP/node/definitions.d/00-users.json"
cp "$ROOT/deploy/rabbitmq/definitions.json" "$TMP/node/definitions.d/10-topology.json"
AMQP_PORT="$(free_port)"
DIST_PORT="$(free_port)"
MGMT_PORT="$(free_port)"
PROM_PORT="$(free_port)"
NODE="relaycheck-compose-$$@localhost"
# compose's rabbitmq.conf with only the folder's path changed, plus this
# node's own ports (the machine's broker owns the standard ones).
sed "s#/etc/rabbitmq/definitions.d#$TMP/node/definitions.d#" rabbitmq/rabbitmq.conf >"$TMP/node/rabbitmq.conf"
cat >>"$TMP/node/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $PROM_PORT
EOF
cp rabbitmq/enabled_plugins "$TMP/node/enabled_plugins"
cat >"$TMP/node/rabbitmq-env.conf" <<'EOF'
ERL_EPMD_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF
# Debian's wrapper runs the node as the rabbitmq user: it must own its files.
chmod 0755 "$TMP"
chown -R rabbitmq:rabbitmq "$TMP/node" 2>/dev/null || true
# rabbitmqctl await_startup fails at once until the node has registered with
# epmd: asked again until it answers, the node dies or the time is up.
booted_within() {
    local deadline=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        timeout 40 rabbitmqctl -n "$NODE" await_startup --timeout 30 >/dev/null 2>&1 && return 0
        # Gone after its first seconds: it failed to boot.
        [ -n "$(node_pids)" ] || [ "$(date +%s)" -lt "$((deadline - $1 + 15))" ] || return 1
        sleep 1
    done
    return 1
}
started="$(date +%s)"
if ! RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" \
    RABBITMQ_DIST_PORT="$DIST_PORT" RABBITMQ_CONFIG_FILE="$TMP/node/rabbitmq.conf" \
    RABBITMQ_CONF_ENV_FILE="$TMP/node/rabbitmq-env.conf" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$TMP/node/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$TMP/node/mnesia" RABBITMQ_LOG_BASE="$TMP/node/log" \
    RABBITMQ_PID_FILE="$TMP/node/pid" rabbitmq-server -detached >"$TMP/node-start.out" 2>&1; then
    flunk "rabbitmq-server did not start: $(cat "$TMP/node-start.out")"
elif ! booted_within 120; then
    flunk "RabbitMQ with compose's rabbitmq.conf and definitions did not boot; its log: $(grep -iE 'error|crash' "$TMP"/node/log/*.log 2>/dev/null | head -n5)"
else
    pass "RabbitMQ $(rabbitmqctl -n "$NODE" version 2>/dev/null) booted with compose's rabbitmq.conf and definitions folder in $(($(date +%s) - started)) s"
    queues="$(rabbitmqctl -n "$NODE" -q list_queues name type --no-table-headers 2>/dev/null || true)"
    expected="$(python3 -c 'import json, sys; print("\n".join(q["name"] for q in json.load(sys.stdin)["queues"]))' \
        <"$ROOT/deploy/rabbitmq/definitions.json")"
    absent=""
    for q in $expected; do grep -q "^$q[[:space:]]" <<<"$queues" || absent="$absent $q"; done
    if [ -n "$expected" ] && [ -z "$absent" ] && grep -qE '^relay\.ingest\.lms-demo[[:space:]]+quorum' <<<"$queues"; then
        pass "definitions loaded at boot: $(wc -w <<<"$expected") queues of definitions.json, relay.ingest.lms-demo is a quorum queue"
    else
        flunk "queues missing after boot:${absent:- relay.ingest.lms-demo is not a quorum queue}; the node has: $(head -c 300 <<<"$queues")"
    fi
    users="$(rabbitmqctl -n "$NODE" -q list_users --no-table-headers 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' ')"
    if [ "$users" = "admin relay-plugin relay-replayer relay-worker " ]; then
        pass "users from init-secrets.sh: admin, relay-plugin, relay-replayer, relay-worker; no default guest user"
    else
        flunk "users after boot are '$users', expected 'admin relay-plugin relay-replayer relay-worker '"
    fi
    # The plugin's listener may come up a little after the node answers
    # rabbitmqctl, and a busy machine makes the first scrape slow: up to 60 s.
    scraped=""
    for _ in $(seq 30); do
        curl -fsS --max-time 10 "http://127.0.0.1:$PROM_PORT/metrics" >"$TMP/rabbitmq-metrics" 2>/dev/null || true
        curl -fsS --max-time 10 "http://127.0.0.1:$PROM_PORT/metrics/detailed?family=queue_coarse_metrics" \
            >"$TMP/rabbitmq-detailed" 2>/dev/null || true
        if grep -q '^rabbitmq_' "$TMP/rabbitmq-metrics" &&
            grep -q '^rabbitmq_detailed_queue_messages{.*queue="relay.ingest.lms-demo"' "$TMP/rabbitmq-detailed"; then
            scraped=yes
            break
        fi
        sleep 2
    done
    if [ -n "$scraped" ]; then
        pass "rabbitmq_prometheus (enabled_plugins) serves /metrics and per-queue /metrics/detailed, as prometheus.yml scrapes them"
    else
        flunk "rabbitmq_prometheus did not answer on its port: enabled_plugins?"
    fi

    # The worker exactly as compose.yaml configures it, host name aside.
    BIN="$ROOT/target/debug/relay-worker"
    [ -x "$ROOT/target/release/relay-worker" ] && [ "$ROOT/target/release/relay-worker" -nt "$BIN" ] && BIN="$ROOT/target/release/relay-worker"
    if [ ! -x "$BIN" ]; then
        say "building relay-worker (cargo build -p relay-worker)"
        (cd "$ROOT" && cargo build -q --locked -p relay-worker)
    fi
    sed "s#@rabbitmq:5672/#@127.0.0.1:$AMQP_PORT/#" "$TMP/secrets/amqp-url" >"$TMP/amqp-url"
    HTTP_PORT="$(free_port)"
    env -u RELAY_AMQP_URL RELAY_CONFIG="$ROOT/deploy/relay-worker.example.toml" \
        RELAY_AMQP_URL_FILE="$TMP/amqp-url" RELAY_WORKER_LISTEN="127.0.0.1:$HTTP_PORT" \
        RUST_LOG=info,lapin=warn "$BIN" 2>"$TMP/worker.log" &
    WORKER=$!
    ready=""
    for _ in $(seq 1 150); do
        if [ "$(curl -s --max-time 1 "http://127.0.0.1:$HTTP_PORT/readyz" 2>/dev/null)" = ready ]; then
            ready=1
            break
        fi
        kill -0 "$WORKER" 2>/dev/null || break
        sleep 0.2
    done
    if [ -n "$ready" ]; then
        pass "relay-worker with compose's settings logs in as relay-worker and is ready on that broker (topology matches)"
    else
        flunk "relay-worker did not become ready on compose's broker: $(grep -E '"level":"(ERROR|WARN)"' "$TMP/worker.log" | tail -n3 | cut -c1-400)"
    fi
fi

summary "compose"
