#!/usr/bin/env bash
# Makes the secrets of the local trial (compose.yaml), once: random passwords
# for the relay's RabbitMQ users, never written anywhere else and never on a
# command line. Files, in deploy/compose/secrets/ (or DIR):
#   users.json        RabbitMQ definitions, imported at boot before the
#                     topology: vhost "/" and the users relay-worker,
#                     relay-plugin (the Moodle plugin), relay-replayer
#                     (dlq-replayer) and admin (management UI), passwords as
#                     salted SHA-256 hashes
#   amqp-url          amqp://relay-worker:<password>@rabbitmq:5672/%2f, the
#                     worker's secret
#   <user>-password   each user's password (relay-plugin's goes into the
#                     plugin's settings; admin's logs in at :15672)
# Permissions: admin may do everything. The relay's users get the least
# privileges deploy/rabbitmq/definitions.json sets for them: it is imported
# after this file, so its permissions replace the fallback ones written here,
# which only matter with a definitions file that has none.
# The folder is 0700 (only you); the files are 0644 because the containers
# read them as their own users (RabbitMQ's, and 65532 for the worker).
# Existing files are kept: delete the folder to make new passwords (and then
# the rabbitmq-data volume, which remembers the old users).
# Usage: deploy/compose/init-secrets.sh [DIR]
set -euo pipefail
DIR="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
USERS=(relay-worker relay-plugin relay-replayer admin)

if [ -s "$DIR/users.json" ] && [ -s "$DIR/amqp-url" ]; then
    echo "secrets already in $DIR (delete the folder to make new ones)"
    exit 0
fi
command -v openssl >/dev/null 2>&1 || {
    echo "error: openssl is needed (Debian: apt-get install openssl)" >&2
    exit 1
}
umask 077
mkdir -p "$DIR"
chmod 0700 "$DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# RabbitMQ's rabbit_password_hashing_sha256: base64(salt . sha256(salt . password)),
# with a 4-byte random salt. Bytes go through files: a shell variable cannot
# hold the salt's zero bytes.
password_hash() {
    head -c 4 /dev/urandom >"$work/salt"
    cat "$work/salt" "$1" | openssl dgst -sha256 -binary >"$work/digest"
    cat "$work/salt" "$work/digest" | openssl base64 -A
}

for user in "${USERS[@]}"; do
    # 32 hexadecimal characters: nothing to escape in a URL or in JSON.
    openssl rand -hex 16 | tr -d '\n' >"$DIR/$user-password"
done

{
    printf '{\n  "vhosts": [{"name": "/"}],\n  "users": [\n'
    sep=""
    for user in "${USERS[@]}"; do
        tags='[]'
        [ "$user" != admin ] || tags='["administrator"]'
        printf '%s    {"name": "%s", "password_hash": "%s",\n     "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": %s}' \
            "$sep" "$user" "$(password_hash "$DIR/$user-password")" "$tags"
        sep=$',\n'
    done
    printf '\n  ],\n  "permissions": [\n'
    printf '    {"user": "admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},\n'
    printf '    {"user": "relay-worker", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},\n'
    printf '    {"user": "relay-plugin", "vhost": "/", "configure": "^$", "write": "^moodle\\\\.ingest$", "read": "^$"},\n'
    printf '    {"user": "relay-replayer", "vhost": "/", "configure": "^$",\n'
    printf '     "write": "^(moodle\\\\.ingest|relay\\\\.requeue|amq\\\\.default)$", "read": "^relay\\\\.dlq$"}\n'
    printf '  ]\n}\n'
} >"$DIR/users.json"

{
    printf 'amqp://relay-worker:'
    cat "$DIR/relay-worker-password"
    printf '@rabbitmq:5672/%%2f\n'
} >"$DIR/amqp-url"
chmod 0644 "$DIR/users.json" "$DIR/amqp-url" "$DIR"/*-password
echo "secrets written to $DIR (users ${USERS[*]}; passwords in <user>-password)"
