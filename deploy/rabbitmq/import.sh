#!/usr/bin/env bash
# Imports the relay's RabbitMQ definitions (definitions.json next to this
# script: exchanges, queues, bindings and the permissions of the relay's
# users) into a vhost, together with the users and their passwords.
#
# Usage: deploy/rabbitmq/import.sh [options]
#   --vhost NAME          vhost to import into (default "/"); created if missing
#   --password-dir DIR    passwords in files DIR/<user> (e.g. DIR/relay-worker);
#                         one trailing newline is ignored
#   --subscriber NAME     also add subscriber NAME (repeatable): it may declare,
#                         bind and read queues named NAME.<anything>, bound to
#                         moodle.events only. NAME: a-z, 0-9, '_', '-'
#   --user-suffix SUFFIX  append SUFFIX to every user name (users are global to
#                         the broker: lets two vhosts have their own users)
#   --definitions FILE    definitions to import (default: definitions.json here)
#   --output FILE         write the complete definitions (with password hashes)
#                         to FILE, mode 0600, instead of importing them: for
#                         RabbitMQ's load_definitions at boot
#
# Passwords: for user <name> (as named before --user-suffix), the file
# <password-dir>/<name> if --password-dir is given, else the environment
# variable BROKER_PASSWORD_<NAME> (upper case, '-' as '_'), e.g.
# BROKER_PASSWORD_RELAY_WORKER. Every user needs one; nothing is imported
# otherwise. Passwords never appear on a command line or in a file this script
# writes: RabbitMQ gets salted SHA-256 hashes, on rabbitmqctl's standard input.
#
# RABBITMQCTL: how to run rabbitmqctl (default "rabbitmqctl"), e.g.
# RABBITMQCTL="docker exec -i rabbitmq rabbitmqctl".
#
# Needs: bash, jq, coreutils (od, sha256sum, base64) and rabbitmqctl.
# Exit status: 0 imported (or written), 1 failed, 2 bad usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
definitions="$here/definitions.json"
vhost="/"
password_dir=""
suffix=""
output=""
subscribers=()

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
fail() {
    echo "import.sh: $*" >&2
    exit 1
}
bad_usage() {
    echo "import.sh: $*" >&2
    echo "run with --help for the options" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --vhost) vhost="${2?--vhost needs a value}"; shift 2 ;;
        --password-dir) password_dir="${2?--password-dir needs a value}"; shift 2 ;;
        --subscriber) subscribers+=("${2?--subscriber needs a value}"); shift 2 ;;
        --user-suffix) suffix="${2?--user-suffix needs a value}"; shift 2 ;;
        --definitions) definitions="${2?--definitions needs a value}"; shift 2 ;;
        --output) output="${2?--output needs a value}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) bad_usage "unknown argument: $1 (passwords are never arguments)" ;;
    esac
done

[ -n "$vhost" ] || bad_usage "--vhost must not be empty"
[[ "$suffix" =~ ^[A-Za-z0-9_-]{0,32}$ ]] ||
    bad_usage "--user-suffix: at most 32 of A-Z, a-z, 0-9, '_', '-'"
[ -r "$definitions" ] || fail "cannot read the definitions $definitions"
[ -z "$password_dir" ] || [ -d "$password_dir" ] || fail "no directory $password_dir"

missing=()
for tool in jq od sha256sum base64; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
read -r -a ctl <<<"${RABBITMQCTL:-rabbitmqctl}"
if [ -z "$output" ] && ! command -v "${ctl[0]}" >/dev/null 2>&1; then
    missing+=("${ctl[0]}")
fi
[ ${#missing[@]} -eq 0 ] ||
    fail "missing: ${missing[*]} (Debian: apt-get install -y jq coreutils; rabbitmqctl comes with rabbitmq-server)"

# The relay's own users are the ones definitions.json gives permissions to.
mapfile -t fixed < <(jq -r '.permissions[]?.user' "$definitions")
[ ${#fixed[@]} -gt 0 ] ||
    fail "$definitions holds no permissions: regenerate it with relay-worker definitions"
for name in "${subscribers[@]}"; do
    [[ "$name" =~ ^[a-z0-9][a-z0-9_-]{0,63}$ ]] ||
        bad_usage "--subscriber $name: 1-64 of a-z, 0-9, '_', '-', not starting with '_' or '-'"
    # Their queues would be the relay's own (relay.*, moodle.*) or reserved (amq.*).
    case "$name" in relay | moodle | amq) bad_usage "--subscriber $name: reserved name" ;; esac
    for user in "${fixed[@]}"; do
        [ "$name" != "$user" ] || bad_usage "--subscriber $name: that is the relay's own user"
    done
done
all=("${fixed[@]}" "${subscribers[@]}")
[ "$(printf '%s\n' "${all[@]}" | sort | uniq -d)" = "" ] || bad_usage "a user is named twice"

# Each user's password, by the name it has before the suffix.
declare -A password=()
absent=()
for name in "${all[@]}"; do
    var="BROKER_PASSWORD_$(tr 'a-z-' 'A-Z_' <<<"$name")"
    if [ -n "$password_dir" ]; then
        file="$password_dir/$name"
        if [ ! -r "$file" ]; then
            absent+=("$file")
            continue
        fi
        if [ -n "$(find "$file" -maxdepth 0 -perm /o+r 2>/dev/null)" ]; then
            echo "import.sh: warning: $file is readable by every user of this machine" >&2
        fi
        IFS= read -r -d '' secret <"$file" || true
        secret="${secret%$'\n'}"
    elif [ -n "${!var+set}" ]; then
        secret="${!var}"
    else
        absent+=("$var")
        continue
    fi
    [ -n "$secret" ] || fail "the password of $name is empty"
    password[$name]="$secret"
done
secret=""
# Not passed on to rabbitmqctl.
for var in "${!BROKER_PASSWORD_@}"; do unset "$var"; done
[ ${#absent[@]} -eq 0 ] || fail "no password for: ${absent[*]}"

# RabbitMQ's rabbit_password_hashing_sha256: base64(salt . sha256(salt . password))
# with 4 random bytes of salt. The password goes through a pipe from printf,
# a shell builtin, so it is never an argument of a program.
hex_bytes() { sed 's/../\\x&/g'; }
password_hash() {
    local salt digest
    salt="$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n' | hex_bytes)"
    # shellcheck disable=SC2059 # the format is the salt's \xHH escapes
    digest="$({ printf "$salt"; printf '%s' "$1"; } | sha256sum | cut -c1-64 | hex_bytes)"
    # shellcheck disable=SC2059
    { printf "$salt"; printf "$digest"; } | base64 -w0
}

# One JSON object per user, read by jq from a pipe (never an argument).
users_json() {
    local name
    for name in "${all[@]}"; do
        printf '{"name":"%s","password_hash":"%s","hashing_algorithm":"rabbit_password_hashing_sha256","tags":[]}\n' \
            "$name$suffix" "$(password_hash "${password[$name]}")"
    done
}

# shellcheck disable=SC2016 # jq's variables, not the shell's
program='
  ($ARGS.positional) as $subscribers
  | .vhosts = [{name: $vhost}]
  | (.exchanges, .queues, .bindings) |= map(.vhost = $vhost)
  | .permissions = [.permissions[] | .vhost = $vhost | .user += $suffix]
      + [$subscribers[] | (. + $suffix) as $u | {
          user: $u, vhost: $vhost,
          configure: "^(\($u)\\..+)$",
          write: "^(\($u)\\..+)$",
          read: "^(\($u)\\..+|moodle\\.events)$"
        }]
  | .users = $users'
document() {
    jq --arg vhost "$vhost" --arg suffix "$suffix" --slurpfile users <(users_json) \
        "$program" "$definitions" --args "${subscribers[@]}"
}

if [ -n "$output" ]; then
    tmp="$(dirname "$output")/.$(basename "$output").$$"
    trap 'rm -f "$tmp"' EXIT
    (umask 077 && document >"$tmp")
    mv "$tmp" "$output"
    echo "wrote $output (mode 0600, vhost $vhost, users: ${all[*]/%/$suffix})"
    exit 0
fi

if ! out="$(document | "${ctl[@]}" import_definitions 2>&1)"; then
    fail "rabbitmqctl import_definitions failed: $out"
fi

# What the broker now holds for each user, as it lists it.
expected="$(jq -r --arg vhost "$vhost" --arg suffix "$suffix" "$program"' | .permissions[]
    | [.user, .configure, .write, .read] | join("\t")' --slurpfile users /dev/null \
    "$definitions" --args "${subscribers[@]}")"
listed="$("${ctl[@]}" list_permissions -p "$vhost" --silent 2>&1)" ||
    fail "rabbitmqctl list_permissions -p $vhost failed: $listed"
while IFS= read -r line; do
    grep -qxF -- "$line" <<<"$listed" ||
        fail "after the import, vhost $vhost lacks the permission line: $line"
done <<<"$expected"

jq -r --arg vhost "$vhost" '"imported into vhost \($vhost): \(.exchanges | length) exchanges, \(.queues | length) queues, \(.bindings | length) bindings"' "$definitions"
echo "users with their password set and their permissions checked: ${all[*]/%/$suffix}"
