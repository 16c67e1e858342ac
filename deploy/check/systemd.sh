#!/usr/bin/env bash
# Checks the systemd units in deploy/systemd/ without installing or starting
# them (this needs no running systemd, only its tools):
#   - `systemd-analyze verify`: syntax, known keys and values, specifiers. It
#     refuses a unit whose ExecStart= binary is missing, so each unit is
#     checked as a copy in a temp dir whose Exec*= paths point at stub
#     executables under that dir (the trick: the unit's own text, only the
#     program paths moved). verify exits 0 even on "Unknown key" warnings, so
#     any output at all is a failure here.
#   - `systemd-analyze security --offline=yes`: the exposure score (0 = locked
#     down, 10 = none), printed; the worker fails above WORKER_MAX_EXPOSURE.
#   - consistency with the worker: TimeoutStopSec= above the shutdown grace of
#     deploy/relay-worker.example.toml, the URL file read from a credential the
#     unit loads, memory limits set.
# Usage: deploy/check/systemd.sh [UNIT_DIR]   (default: deploy/systemd)
# Runs in about a second. Exit status 0 when every check passed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/deploy/dev/lib.sh"
UNIT_DIR="$(cd "${1:-$ROOT/deploy/systemd}" && pwd)"
WORKER_MAX_EXPOSURE="${WORKER_MAX_EXPOSURE:-2.5}"
# The follower runs PHP as Moodle's user (no DynamicUser, writable moodledata).
FOLLOWER_MAX_EXPOSURE="${FOLLOWER_MAX_EXPOSURE:-3.0}"

command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
systemd-analyze security --help 2>/dev/null | grep -q -- '--offline' ||
    fail "systemd-analyze $(systemd-analyze --version | head -n1) has no 'security --offline' (systemd 250 or later needed)"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
. "$ROOT/deploy/check/lib.sh"

# A unit's value for KEY (the last one wins, as in systemd).
value() { sed -n "s/^$2=//p" "$1" | tail -n1; }

# Seconds in a systemd time span such as 45, 45s, 1min 30s, 2min.
seconds() {
    local total=0 n unit
    while read -r n unit; do
        case "$unit" in
        "" | s | sec) total=$((total + n)) ;;
        m | min) total=$((total + 60 * n)) ;;
        h) total=$((total + 3600 * n)) ;;
        *) echo -1; return ;;
        esac
    done < <(grep -oE '[0-9]+ *[a-z]*' <<<"$1" | sed -E 's/([0-9]+) *([a-z]*)/\1 \2/')
    echo "$total"
}

# A copy of unit $1 in $TMP/units whose Exec*= programs are stubs; prints its path.
stubbed_copy() {
    local unit="$1" copy="$TMP/units/$(basename "$1")" program
    mkdir -p "$TMP/units"
    cp "$unit" "$copy"
    # The program is the first word after Exec*=, past systemd's prefixes (-@:+!).
    while read -r program; do
        mkdir -p "$TMP/stub$(dirname "$program")"
        printf '#!/bin/sh\nexit 0\n' >"$TMP/stub$program"
        chmod +x "$TMP/stub$program"
        sed -i -E "s#^(Exec[A-Za-z]*=[-@:+!]*)$program([[:space:]]|\$)#\1$TMP/stub$program\2#" "$copy"
    done < <(sed -nE 's/^Exec[A-Za-z]*=[-@:+!]*(\/[^[:space:]]+).*/\1/p' "$unit" | sort -u)
    echo "$copy"
}

units=("$UNIT_DIR"/*.service)
[ -e "${units[0]}" ] || fail "no .service files in $UNIT_DIR"

for unit in "${units[@]}"; do
    name="$(basename "$unit")"
    copy="$(stubbed_copy "$unit")"
    if out="$(systemd-analyze verify "$copy" 2>&1)" && [ -z "$out" ]; then
        pass "$name: systemd-analyze verify is clean"
    else
        flunk "$name: systemd-analyze verify: ${out//$TMP\/units\//}"
    fi

    report="$(systemd-analyze security --offline=yes "$copy" 2>&1 || true)"
    score="$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$report")"
    case "$name" in
    relay-worker.service) limit="$WORKER_MAX_EXPOSURE" ;;
    *) limit="$FOLLOWER_MAX_EXPOSURE" ;;
    esac
    if [ -z "$score" ]; then
        flunk "$name: systemd-analyze security gave no score: $(tail -n3 <<<"$report")"
    elif awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
        pass "$name: exposure $score (limit $limit)"
    else
        flunk "$name: exposure $score is above $limit; what is still open:"
        grep '^✗' <<<"$report" | sed 's/^/         /'
    fi
done

for timer in "$UNIT_DIR"/*.timer; do
    [ -e "$timer" ] || continue
    name="$(basename "$timer")"
    service="$UNIT_DIR/${name%.timer}.service"
    [ -f "$service" ] || { flunk "$name: no ${name%.timer}.service beside it"; continue; }
    # Verified with the service it starts (a timer alone fails on the missing unit).
    cp "$timer" "$TMP/units/$name"
    if out="$(systemd-analyze verify "$TMP/units/$name" "$(stubbed_copy "$service")" 2>&1)" && [ -z "$out" ]; then
        pass "$name: systemd-analyze verify is clean"
    else
        flunk "$name: systemd-analyze verify: ${out//$TMP\/units\//}"
    fi
done

worker="$UNIT_DIR/relay-worker.service"
if [ -f "$worker" ]; then
    grace="$(sed -nE 's/^shutdown_grace_s *= *([0-9]+).*/\1/p' "$ROOT/deploy/relay-worker.example.toml")"
    stop="$(seconds "$(value "$worker" TimeoutStopSec)")"
    if [ -n "$grace" ] && [ "$stop" -gt "$grace" ]; then
        pass "relay-worker.service: TimeoutStopSec ${stop}s > worker.shutdown_grace_s ${grace}s"
    else
        flunk "relay-worker.service: TimeoutStopSec (${stop}s) must exceed worker.shutdown_grace_s (${grace:-?}s)"
    fi
    url_cred="$(sed -nE 's/^Environment=RELAY_AMQP_URL_FILE=%d\/(.+)$/\1/p' "$worker" | tail -n1)"
    if [ -n "$url_cred" ] && grep -qE "^LoadCredential=$url_cred:/" "$worker"; then
        pass "relay-worker.service: RELAY_AMQP_URL_FILE reads credential '$url_cred', which LoadCredential= loads"
    else
        flunk "relay-worker.service: RELAY_AMQP_URL_FILE=%d/NAME must name a LoadCredential=NAME:PATH of the unit"
    fi
    if [ "$(value "$worker" DynamicUser)" = yes ] && [ -n "$(value "$worker" MemoryMax)" ] &&
        [ "$(value "$worker" Restart)" = on-failure ]; then
        pass "relay-worker.service: DynamicUser=yes, MemoryMax=$(value "$worker" MemoryMax), Restart=on-failure"
    else
        flunk "relay-worker.service: needs DynamicUser=yes, a MemoryMax= and Restart=on-failure"
    fi
fi

summary "systemd"
