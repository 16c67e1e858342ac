#!/usr/bin/env bash
# Checks the least-privilege broker users (deploy/rabbitmq/) for real:
#   1. import.sh: bash -n and shellcheck;
#   2. definitions.json is what relay-worker generates, and holds no user,
#      password or hash; every permission pattern is anchored (unit tests);
#   3. on the local RabbitMQ (127.0.0.1:5672, guest; started if needed):
#      import.sh loads definitions.json and five users (random passwords)
#      into a scratch vhost; each user does its program's job and is refused
#      (403 ACCESS_REFUSED) what it must not do; relay-worker runs as its user
#      and relays, retries and dead-letters; import.sh's refusals and its
#      --output file (relay-worker's integration tests `permissions::*`);
#   4. the tests left no user and no vhost behind.
# Installs what is missing (jq, shellcheck, RabbitMQ, Rust) with apt-get as
# root or through sudo -n. About 20 s once built; the first build takes a
# few minutes. Exit status 0 when every check passed.
# Usage: deploy/rabbitmq/check.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
# shellcheck disable=SC1091 # the development set-up helpers (apt_install)
. "$ROOT/deploy/dev/lib.sh"
cd "$ROOT"

. "$ROOT/deploy/check/lib.sh"

missing=()
command -v jq >/dev/null 2>&1 || missing+=(jq)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
deploy/dev/ensure-rust.sh >/dev/null
deploy/dev/ensure-rabbitmq.sh >/dev/null
# rustup's cargo, when ensure-rust.sh has just installed it.
[ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH"

# Tags the users and vhosts of this run, so the trap can remove what a killed
# test left (the tests delete their own even when they fail).
RUN="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
export RELAY_TEST_RUN="$RUN"
leftovers() {
    {
        rabbitmqctl list_users --silent 2>/dev/null | cut -f1 | grep -E -- "-t${RUN}[0-9a-f]{8}$" | sed 's/^/user /'
        rabbitmqctl list_vhosts --silent 2>/dev/null | grep -E "^relay-perm-${RUN}-" | sed 's/^/vhost /'
    } || true
}
cleanup() {
    local kind name
    while read -r kind name; do
        [ -n "$name" ] || continue
        case "$kind" in
            # </dev/null: rabbitmqctl would eat the rest of the list.
            user) rabbitmqctl delete_user --quiet "$name" </dev/null >/dev/null 2>&1 || true ;;
            vhost) rabbitmqctl delete_vhost --quiet "$name" </dev/null >/dev/null 2>&1 || true ;;
        esac
    done < <(leftovers)
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOG="$(mktemp)"
trap 'cleanup; rm -f "$LOG"' EXIT

if bash -n deploy/rabbitmq/import.sh 2>"$LOG"; then
    pass "import.sh parses (bash -n)"
else
    flunk "import.sh does not parse: $(cat "$LOG")"
fi
if shellcheck deploy/rabbitmq/import.sh deploy/rabbitmq/check.sh >"$LOG" 2>&1; then
    pass "import.sh and check.sh: shellcheck clean"
else
    flunk "shellcheck: $(cat "$LOG")"
fi

# cargo test's own lines that say which test passed or failed.
results() { grep -E '^test .* \.\.\. |^test result' "$LOG" | sed 's/^/       /'; }

if cargo test --locked -q -p relay-worker --lib topology::tests -- --test-threads 2 >"$LOG" 2>&1; then
    pass "definitions.json is current, holds no user or secret, patterns anchored (unit tests)"
else
    flunk "topology unit tests:"
    results
    tail -n 30 "$LOG"
fi

if cargo test --locked -p relay-worker --test it permissions:: >"$LOG" 2>&1; then
    pass "on the broker: each user does its job and is refused the rest; the worker runs as relay-worker; import.sh refusals and --output"
    results
else
    flunk "permissions tests on the broker:"
    results
    grep -E "panicked at|^  left|^ right|must be|refused" "$LOG" | grep -v "refused as it must be" | head -n 20
fi

left="$(leftovers)"
if [ -z "$left" ]; then
    pass "no user or vhost of this run left on the broker"
else
    flunk "left on the broker (the trap removes them now): $(tr '\n' ' ' <<<"$left")"
fi

summary "broker users"
