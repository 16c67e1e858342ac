# shellcheck shell=bash
# What the deployment checks share: the tally (one line per check, then a
# summary whose exit status says whether every check passed) and promtool.
# Sourced after deploy/dev/lib.sh, not run.
PASSED=0
FAILED=0
pass() { printf 'ok     %s\n' "$*"; PASSED=$((PASSED + 1)); }
flunk() { printf 'FAIL   %s\n' "$*"; FAILED=$((FAILED + 1)); }
# "NAME: N passed, N failed"; fails when any check did.
summary() {
    echo "$1: $PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

PROMETHEUS_TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/moodle-event-relay/prometheus"

# promtool and prometheus of Debian's package, unpacked once into
# $PROMETHEUS_TOOLS (not installed: the package would start a server).
ensure_prometheus_tools() {
    if [ -x "$PROMETHEUS_TOOLS/usr/bin/promtool" ] && [ -x "$PROMETHEUS_TOOLS/usr/bin/prometheus" ]; then
        return
    fi
    command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install Debian's prometheus package (promtool) by hand"
    local policy
    policy="$(apt-cache policy prometheus 2>/dev/null || true)"
    if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
        say "refreshing Debian package lists (apt-get update)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    local dl
    dl="$(mktemp -d)"
    say "downloading Debian's prometheus package to unpack promtool and prometheus into $PROMETHEUS_TOOLS"
    # apt's sandbox user cannot write to a private temp dir; it downloads as us.
    (cd "$dl" && apt-get download -q prometheus >/dev/null 2>&1) ||
        { rm -rf "$dl"; fail "apt-get download prometheus failed (is Debian's package index reachable?)"; }
    mkdir -p "$PROMETHEUS_TOOLS"
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -C "$PROMETHEUS_TOOLS" ./usr/bin/promtool ./usr/bin/prometheus
    rm -rf "$dl"
}
