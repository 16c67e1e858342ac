#!/usr/bin/env bash
# Checks deploy/prometheus/ and deploy/grafana/ with real tools:
#   1. promtool check rules / test rules (every alert fires in one case and
#      stays quiet in another) / check config, and the dashboard's expressions
#      parsed by promtool as recording rules;
#   2. deploy/check/metric_names.py: every metric name used is exported by
#      relay-worker or listed in deploy/check/metrics-external.txt;
#   3. live: a private RabbitMQ node with rabbitmq_prometheus (its own ports,
#      data and generated password; the machine's broker is not touched) gets
#      the shipped topology (deploy/rabbitmq/definitions.json) and a few
#      messages, and a real Prometheus server loads prometheus.yml (targets
#      pointed at that node) and alerts.yml: the RabbitMQ names exist, the
#      queue alerts and panels select the real series.
# promtool and prometheus come from Debian's `prometheus` package, unpacked
# into ~/.cache (no service is installed or started). RELAY_PROM_CHECK_LIVE=0
# skips step 3. Exit status 0 when everything passed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck source=deploy/dev/lib.sh
. "$ROOT/deploy/dev/lib.sh"
. "$ROOT/deploy/check/lib.sh"

PROM_DIR="$ROOT/deploy/prometheus"
CACHE="$PROMETHEUS_TOOLS"
FAILED=0
WORK=""
NODE=""
PROM_PID=""

ok() { printf 'ok   %s\n' "$*"; }
bad() { printf 'FAIL %s\n' "$*"; FAILED=1; }

cleanup() {
    if [ -n "$PROM_PID" ]; then
        kill "$PROM_PID" 2>/dev/null || true
        wait "$PROM_PID" 2>/dev/null || true
    fi
    if [ -n "$NODE" ]; then
        if ! as_root rabbitmqctl -q -n "$NODE" stop >/dev/null 2>&1; then
            # It did not answer: kill the node's VM by the pid it wrote.
            local pid
            pid="$(cat "$WORK/rabbit/pid" 2>/dev/null || true)"
            if [ -n "$pid" ]; then
                as_root kill -9 "$pid" 2>/dev/null || true
            fi
        fi
    fi
    if [ -n "$WORK" ]; then
        as_root rm -rf "$WORK" 2>/dev/null || rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_python() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
}

# --- 1 and 2: static checks ---------------------------------------------------

static_checks() {
    local promtool="$CACHE/usr/bin/promtool" out
    ok "promtool: $("$promtool" --version 2>&1 | head -1)"
    if out="$("$promtool" check rules "$PROM_DIR/alerts.yml" 2>&1)"; then
        ok "promtool check rules alerts.yml: $(grep -o '[0-9]* rules found' <<<"$out")"
    else
        bad "promtool check rules alerts.yml:"; printf '%s\n' "$out"
    fi
    if out="$("$promtool" test rules "$PROM_DIR/alerts.test.yml" 2>&1)"; then
        ok "promtool test rules alerts.test.yml: $(grep -c 'alertname:' "$PROM_DIR/alerts.test.yml") alert checks passed"
    else
        bad "promtool test rules alerts.test.yml:"; printf '%s\n' "$out"
    fi
    if out="$("$promtool" check config "$PROM_DIR/prometheus.yml" 2>&1)"; then
        ok "promtool check config prometheus.yml (rule files included)"
    else
        bad "promtool check config prometheus.yml:"; printf '%s\n' "$out"
    fi
    coverage_check
    if python3 "$ROOT/deploy/check/metric_names.py" --dashboard-rules "$WORK/dashboard-rules.json" >"$WORK/names.out"; then
        ok "metric names: $(tail -1 "$WORK/names.out" | sed 's/^ok *metric names: //')"
    else
        bad "metric names (deploy/check/metric_names.py):"; grep -v '^ok ' "$WORK/names.out" || true
    fi
    grep '^note' "$WORK/names.out" || true
    if [ -s "$WORK/dashboard-rules.json" ]; then
        if out="$("$promtool" check rules "$WORK/dashboard-rules.json" 2>&1)"; then
            ok "dashboard expressions parse as PromQL: $(grep -o '[0-9]* rules found' <<<"$out")"
        else
            bad "dashboard expressions do not parse:"; printf '%s\n' "$out"
        fi
    fi
}

# Every alert of alerts.yml has a case in alerts.test.yml where it fires and
# one where it must stay quiet.
coverage_check() {
    local out
    if out="$(python3 - "$PROM_DIR/alerts.yml" "$PROM_DIR/alerts.test.yml" 2>&1 <<'PY'
import re, sys
alerts = re.findall(r"^\s*-\s*alert:\s*(\S+)", open(sys.argv[1]).read(), re.M)
lines = open(sys.argv[2]).read().splitlines()
fires, quiet = set(), set()
for i, line in enumerate(lines):
    m = re.match(r"\s*alertname:\s*(\S+)\s*$", line)
    if not m:
        continue
    after = next((l.strip() for l in lines[i + 1:] if l.strip()), "")
    if after == "exp_alerts: []":
        quiet.add(m.group(1))
    elif after == "exp_alerts:":
        fires.add(m.group(1))
    else:
        sys.exit(f"{sys.argv[2]}:{i + 2}: expected exp_alerts after alertname")
missing = [f"{a} (no firing case)" for a in alerts if a not in fires]
missing += [f"{a} (no quiet case)" for a in alerts if a not in quiet]
unknown = sorted((fires | quiet) - set(alerts))
if missing or unknown:
    sys.exit("; ".join(missing + [f"{u} is tested but not in alerts.yml" for u in unknown]))
print(len(alerts))
PY
)"; then
        ok "alerts.test.yml covers each of the $out alerts with a firing and a quiet case"
    else
        bad "alerts.test.yml coverage: $out"
    fi
}

# --- 3: live, against a private RabbitMQ node and a real Prometheus -----------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# GET an URL of the private node or Prometheus; credentials from a file.
http() {
    python3 "$WORK/check_http.py" "$@"
}

start_rabbit_node() {
    command -v rabbitmq-server >/dev/null 2>&1 || apt_install rabbitmq-server
    local dir="$WORK/rabbit" password
    AMQP_PORT="$(free_port)"; PROM_PORT_RMQ="$(free_port)"; MGMT_PORT="$(free_port)"; DIST_PORT="$(free_port)"
    NODE_NAME="relayprom-$$-$RANDOM@localhost"
    password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
    mkdir -p "$dir/mnesia" "$dir/log"
    # Its own listeners on loopback, a user with a password made now, stats
    # every second (the default 5 s only slows the check down).
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$AMQP_PORT
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $PROM_PORT_RMQ
management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
default_user = relayprom
default_pass = $password
loopback_users = none
collect_statistics_interval = 1000
EOF
    echo '[rabbitmq_prometheus,rabbitmq_management].' >"$dir/enabled_plugins"
    printf 'ERL_EPMD_ADDRESS=127.0.0.1\nSERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"\n' >"$dir/rabbitmq-env.conf"
    printf 'relayprom\n%s\n' "$password" >"$WORK/credentials"
    chmod 600 "$WORK/credentials" "$dir/rabbitmq.conf"
    # The topology only: users are made per installation, so permissions for
    # them would not import here.
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
json.dump({k: d[k] for k in ("vhosts", "exchanges", "queues", "bindings") if k in d}, open(sys.argv[2], "w"))' \
        "$ROOT/deploy/rabbitmq/definitions.json" "$dir/definitions.json"
    # The wrapper runs the node as the rabbitmq user: it must own its files.
    as_root chown -R rabbitmq:rabbitmq "$dir"
    NODE="$NODE_NAME"
    as_root env RABBITMQ_NODENAME="$NODE" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT="$DIST_PORT" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
        rabbitmq-server -detached >"$WORK/rabbit-start.out" 2>&1 ||
        { cat "$WORK/rabbit-start.out"; fail "could not start a private RabbitMQ node"; }
    local i
    for i in $(seq 1 120); do
        as_root rabbitmqctl -q -n "$NODE" await_startup --timeout 30 >/dev/null 2>&1 && break
        [ "$i" -eq 120 ] && fail "private RabbitMQ node $NODE did not start in 60 s (log: $dir/log)"
        sleep 0.5
    done
    as_root rabbitmqctl -q -n "$NODE" import_definitions "$dir/definitions.json" >/dev/null ||
        fail "rabbitmqctl import_definitions deploy/rabbitmq/definitions.json failed"
    ok "private RabbitMQ $(as_root rabbitmqctl -q -n "$NODE" version 2>/dev/null) node with rabbitmq_prometheus started, the topology of definitions.json imported"
}

start_prometheus() {
    local closed
    PROM_PORT="$(free_port)"; closed="$(free_port)"
    mkdir -p "$WORK/prom"
    cp "$PROM_DIR/alerts.yml" "$WORK/prom/alerts.yml"
    # The shipped configuration, its targets pointed here, every second.
    python3 - "$PROM_DIR/prometheus.yml" "$WORK/prom/prometheus.yml" "$PROM_PORT_RMQ" "$closed" <<'PY'
import sys
text = open(sys.argv[1]).read()
swaps = {
    "scrape_interval: 15s": "scrape_interval: 1s",
    "evaluation_interval: 30s": "evaluation_interval: 1s",
    '"rabbitmq:15692"': f'"127.0.0.1:{sys.argv[3]}"',
    '"relay-worker:9464"': f'"127.0.0.1:{sys.argv[4]}"',
    '"moodle:9100"': f'"127.0.0.1:{sys.argv[4]}"',
}
for old, new in swaps.items():
    if old not in text:
        sys.exit(f"prometheus.yml has no {old}: update deploy/check/prometheus.sh's live check")
    text = text.replace(old, new)
open(sys.argv[2], "w").write(text)
PY
    "$CACHE/usr/bin/prometheus" --config.file="$WORK/prom/prometheus.yml" \
        --storage.tsdb.path="$WORK/prom/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
        --log.level=warn >"$WORK/prom/prometheus.log" 2>&1 &
    PROM_PID=$!
    local i
    for i in $(seq 1 60); do
        http "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1 && break
        [ "$i" -eq 60 ] && { cat "$WORK/prom/prometheus.log"; fail "Prometheus did not become ready in 30 s"; }
        sleep 0.5
    done
    ok "Prometheus $("$CACHE/usr/bin/prometheus" --version 2>&1 | head -1 | awk '{print $3}') serves the shipped prometheus.yml (targets pointed at the private node) and alerts.yml"
}

# Waits until QUERY (PromQL) returns a series with value WANT; prints its result.
await_query() {
    local query="$1" want="$2" i
    for i in $(seq 1 40); do
        if http --query "http://127.0.0.1:$PROM_PORT" "$query" "$want" >"$WORK/q.out" 2>&1; then
            cat "$WORK/q.out"
            return 0
        fi
        sleep 0.5
    done
    cat "$WORK/q.out"
    return 1
}

write_http_helper() {
    cat >"$WORK/check_http.py" <<'PY'
import base64, json, sys, urllib.parse, urllib.request
def get(url, data=None, auth=None):
    req = urllib.request.Request(url, data=data)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()
args = sys.argv[1:]
if args[0] == "--query":
    # --query BASE PROMQL WANT: one series or more; WANT "any" or a number all must equal.
    base, query, want = args[1:4]
    body = json.loads(get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": query})))
    result = body["data"]["result"]
    shown = "; ".join("{" + ", ".join(f'{k}="{v}"' for k, v in sorted(r["metric"].items())) + "} " + r["value"][1] for r in result)
    print(shown or "(empty)")
    good = bool(result) and (want == "any" or all(float(r["value"][1]) == float(want) for r in result))
    sys.exit(0 if good else 1)
if args[0] == "--publish":
    # --publish MGMT_URL CREDENTIALS_FILE QUEUE COUNT: via the default exchange.
    base, creds, queue, count = args[1:5]
    user, password = open(creds).read().split("\n")[:2]
    for n in range(int(count)):
        payload = json.dumps({"properties": {"delivery_mode": 2}, "routing_key": queue,
                              "payload": f"relay check {n}", "payload_encoding": "string"}).encode()
        if not json.loads(get(base + "/api/exchanges/%2F/amq.default/publish", payload, f"{user}:{password}"))["routed"]:
            sys.exit(f"{queue}: message not routed")
    sys.exit(0)
if args[0] == "--save":
    open(args[2], "w").write(get(args[1]))
    sys.exit(0)
print(get(args[0]))
PY
}

live_checks() {
    write_http_helper
    start_rabbit_node
    local site_queue site
    site_queue="$(python3 -c 'import json,sys; print(next(q["name"] for q in json.load(open(sys.argv[1]))["queues"] if q["name"].startswith("relay.ingest.")))' "$ROOT/deploy/rabbitmq/definitions.json")"
    site="${site_queue#relay.ingest.}"
    start_prometheus
    local dlq='rabbitmq_detailed_queue_messages{job="rabbitmq-queues", queue="relay.dlq"}'
    if await_query "$dlq" 0 >/dev/null; then
        ok "scraped relay.dlq from /metrics/detailed (empty)"
    else
        bad "Prometheus never scraped $dlq: $(cat "$WORK/q.out")"; return
    fi
    http --publish "http://127.0.0.1:$MGMT_PORT" "$WORK/credentials" relay.dlq 3
    http --publish "http://127.0.0.1:$MGMT_PORT" "$WORK/credentials" "$site_queue" 2
    ok "published 3 messages to relay.dlq and 2 to $site_queue (no consumer)"
    http --save "http://127.0.0.1:$PROM_PORT_RMQ/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count" "$WORK/scrape.txt"
    local out
    if out="$(python3 "$ROOT/deploy/check/metric_names.py" --scrape "$WORK/scrape.txt" 2>&1)"; then
        grep 'present in RabbitMQ' <<<"$out" | sed 's/^ok *//; s/^/ok   RabbitMQ name /'
    else
        bad "RabbitMQ names:"; grep '^FAIL' <<<"$out"
    fi
    expect "$dlq" 3 "relay.dlq depth as Prometheus stored it"
    expect "rabbitmq_detailed_queue_messages_ready{queue=\"$site_queue\"}" 2 "$site_queue ready messages"
    expect "rabbitmq_detailed_queue_consumers{queue=\"$site_queue\"}" 0 "$site_queue consumers"
    local alert
    for alert in RelayIngestNotConsumed RelayDeadLettersGrowing; do
        expect "$(python3 "$ROOT/deploy/check/metric_names.py" --expr "$alert")" any "expression of $alert selects the real series"
    done
    expect "ALERTS{alertname=\"RelayIngestNotConsumed\", alertstate=\"pending\", site=\"$site\"}" 1 "RelayIngestNotConsumed pending for site $site (for: 5m keeps it from firing here)"
    expect 'ALERTS{alertname="RelayDeadLettersGrowing", alertstate="pending", queue="relay.dlq"}' 1 "RelayDeadLettersGrowing pending"
    expect 'ALERTS{alertname="RelayWorkerDown", alertstate="pending"}' 1 "RelayWorkerDown pending (no worker runs here)"
    if http --query "http://127.0.0.1:$PROM_PORT" 'ALERTS{alertname="RelayBrokerQueueMetricsAbsent"}' any >/dev/null 2>&1; then
        bad "RelayBrokerQueueMetricsAbsent is active although the queue metrics are scraped"
    else
        ok "RelayBrokerQueueMetricsAbsent stays quiet while the queue metrics are scraped"
    fi
    # The dashboard's RabbitMQ panels ($site = all sites) on the real series.
    python3 -c 'import json,sys
for r in json.load(open(sys.argv[1]))["groups"][0]["rules"]:
    if "rabbitmq_" in r["expr"]:
        print(r["expr"])' "$WORK/dashboard-rules.json" >"$WORK/panels.txt"
    while IFS= read -r out; do
        expect "$out" any "dashboard: $out"
    done <"$WORK/panels.txt"
}

# expect PROMQL WANT DESCRIPTION: one ok/FAIL line.
expect() {
    local shown
    if shown="$(await_query "$1" "$2")"; then
        ok "$3: $shown"
    else
        bad "$3: $1 returned $shown, wanted ${2/any/a series}"
    fi
}

main() {
    local started=$SECONDS
    need_python
    ensure_prometheus_tools
    WORK="$(mktemp -d)"
    chmod 755 "$WORK"
    static_checks
    if [ "${RELAY_PROM_CHECK_LIVE:-1}" != 0 ]; then
        live_checks
    else
        say "RELAY_PROM_CHECK_LIVE=0: live RabbitMQ + Prometheus check skipped"
    fi
    if [ "$FAILED" -ne 0 ]; then
        printf 'FAIL deploy/check/prometheus.sh (%d s)\n' $((SECONDS - started))
        exit 1
    fi
    printf 'ok   deploy/check/prometheus.sh: all checks passed (%d s)\n' $((SECONDS - started))
}

main "$@"
