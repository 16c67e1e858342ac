#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/kubernetes/, one line per check:
#   1. yamllint (relaxed rules, warnings count) on every manifest;
#   2. every object against a schema: core objects with kubernetes-validate,
#      strict, for Kubernetes 1.30 and 1.37; KEDA's ScaledObject and
#      TriggerAuthentication and the ServiceMonitor against their CRDs' schemas
#      (from the cloudcoil-models-* packages);
#   3. how the objects fit together and with relay-worker (deploy/check/k8s_check.py),
#      including `relay-worker --check-config` on the ConfigMap's relay.toml;
#   4. live: the real worker with that relay.toml against a scratch vhost of the
#      local RabbitMQ: probe paths, scrape path, the queues the KEDA regex
#      counts, SIGTERM within the grace period. Skipped with --no-live.
# Installs what it needs (python3-venv from Debian, the Python packages into a
# venv under target/), builds relay-worker if target/debug/relay-worker is
# missing (or uses $RELAY_WORKER_BIN). Exits non-zero on any failure.
# Takes ~10 s, ~17 s with the live part (after the first run's pip install).
# Leaves nothing behind: the worker is stopped and the vhost deleted on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=../dev/lib.sh
. "$ROOT/deploy/dev/lib.sh"

LIVE=1
case "${1:-}" in
    --no-live) LIVE=0 ;;
    "") ;;
    *) fail "usage: $0 [--no-live]" ;;
esac

# K8S_MANIFESTS: check another copy instead (e.g. a modified one).
MANIFESTS="${K8S_MANIFESTS:-$ROOT/deploy/kubernetes}"
VENV="$ROOT/target/k8s-check-venv"
# Pinned, so the checks mean the same thing on every machine. kubernetes-validate
# ships the schemas of Kubernetes 1.25-1.37; cloudcoil-models-keda 2.16.1.0 is
# KEDA 2.16's CRDs (newer ones need Python 3.14), prometheus-operator 0.80.1's.
REQUIREMENTS="kubernetes-validate==1.37.0
yamllint==1.38.0
PyYAML==6.0.3
jsonschema==4.26.0
pydantic==2.14.4
cloudcoil==0.6.0
cloudcoil-models-keda==2.16.1.0
cloudcoil-models-prometheus-operator==0.80.1.0"
K8S_VERSIONS=(1.30.0 1.37.0)

WORK="$(mktemp -d)"
VHOST=""
cleanup() {
    if [ -s "$WORK/worker.pid" ]; then
        kill "$(cat "$WORK/worker.pid")" 2>/dev/null || true
    fi
    if [ -n "$VHOST" ]; then
        rabbitmqctl_ delete_vhost "$VHOST" >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rabbitmqctl_() { as_root rabbitmqctl "$@"; }

# --- tools --------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || apt_install python3
# Debian's python3 makes venvs only with python3-venv (ensurepip) installed.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    say "k8s check: installing $(echo "$REQUIREMENTS" | tr '\n' ' ')into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    echo "$REQUIREMENTS" >"$WORK/requirements.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$WORK/requirements.txt" ||
        fail "pip install failed (PyPI must be reachable)"
    echo "$REQUIREMENTS" >"$VENV/.requirements"
fi

BIN="${RELAY_WORKER_BIN:-$ROOT/target/debug/relay-worker}"
if [ ! -x "$BIN" ]; then
    say "k8s check: $BIN missing; building relay-worker"
    command -v cargo >/dev/null 2>&1 || "$ROOT/deploy/dev/ensure-rust.sh"
    (cd "$ROOT" && cargo build -q --locked -p relay-worker)
    BIN="$ROOT/target/debug/relay-worker"
fi

# --- the checks -------------------------------------------------------------------
args=(--manifests "$MANIFESTS" --repo "$ROOT" --relay-worker "$BIN")
for v in "${K8S_VERSIONS[@]}"; do args+=(--kubernetes-version "$v"); done
if [ "$LIVE" = 1 ]; then
    "$ROOT/deploy/dev/ensure-rabbitmq.sh"
    VHOST="k8s-check-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
    rabbitmqctl_ add_vhost "$VHOST" >/dev/null
    rabbitmqctl_ set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
    args+=(--live-vhost "$VHOST" --pid-file "$WORK/worker.pid")
    if [ "$(id -u)" -ne 0 ]; then args+=(--rabbitmqctl "sudo -n rabbitmqctl"); fi
fi
"$VENV/bin/python" "$ROOT/deploy/check/k8s_check.py" "${args[@]}"
