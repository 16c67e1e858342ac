#!/usr/bin/env bash
# Instructions PHP executes per user_update_user() with the standard log store, with the plugin, and with both,
# over the same call with neither: valgrind's callgrind counts instructions, the same for the same code and data
# whatever else the machine is doing, where times on a shared 2-core machine vary by more than the costs measured.
# Run by hand against a TEST site with local_eventrelay installed (tests/moodle/bulk_bench.php says what it changes):
#   tests/moodle/instructions.sh --moodle=/path/to/moodle [--users=100]
# Each mode runs twice, with 1 and with N users; (N-run - 1-run) / (N - 1) is the per-update count without the
# start-up of PHP and Moodle, and the mode's extra is that count less the count of "nothing".
set -euo pipefail

moodle=""
users=100
for arg in "$@"; do
    case "$arg" in
        --moodle=*) moodle="${arg#--moodle=}" ;;
        --users=*) users="${arg#--users=}" ;;
        *) echo "usage: $0 --moodle=DIR [--users=N]" >&2; exit 2 ;;
    esac
done
[[ -n "$moodle" && "$users" -gt 1 ]] || { echo "usage: $0 --moodle=DIR [--users=N > 1]" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 2; }
bench="$(cd "$(dirname "$0")" && pwd)/bulk_bench.php"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Instructions of one run (callgrind's total, from its output file's summary line).
count() {
    local mode="$1" n="$2" out="$work/$1.$2"
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        php "$bench" --moodle="$moodle" --users="$n" --only="$mode" >/dev/null 2>"$work/valgrind.log" \
        || { cat "$work/valgrind.log" >&2; exit 1; }
    awk '/^summary:/ { print $2 }' "$out"
}

# Users are created (untimed, uncounted in the difference) by the first run that needs them.
php "$bench" --moodle="$moodle" --users="$users" --only=nothing >/dev/null 2>&1
declare -A per
for mode in nothing log plugin both; do
    # A first run of the mode fills the caches it needs (after a purge, or a setting changed) uncounted.
    php "$bench" --moodle="$moodle" --users=1 --only="$mode" >/dev/null 2>&1
    one="$(count "$mode" 1)"
    many="$(count "$mode" "$users")"
    per[$mode]=$(( (many - one) / (users - 1) ))
done
echo "instructions per user_update_user() (callgrind, ${users} updates less 1):"
printf '  nothing       %9d\n' "${per[nothing]}"
for mode in log plugin both; do
    printf '  %-12s  %9d  (%+d over nothing)\n' "$mode" "${per[$mode]}" $(( per[$mode] - per[nothing] ))
done
log=$(( per[log] - per[nothing] ))
plugin=$(( per[plugin] - per[nothing] ))
awk -v p="$plugin" -v l="$log" 'BEGIN { printf "plugin / standard log: %.2f\n", p / l }'
