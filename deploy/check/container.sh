#!/usr/bin/env bash
# Checks the relay's container image for real, without any registry:
#   - builds it with deploy/container/build-local.sh (buildah, from scratch),
#     from the release binaries when target/release has both, else from the
#     debug ones (what `make test` builds anyway: a release build takes
#     minutes on 2 cores). RELAY_IMAGE_PROFILE=release|debug forces one;
#   - prints its size (release: fails above MAX_IMAGE_MB) and checks its
#     configuration: user 65532, entrypoint, port, HEALTHCHECK kept;
#   - runs `relay-worker --version` and `dlq-replayer --version` in it;
#   - runs the worker in it with podman against the machine's RabbitMQ
#     (--network host, --read-only, every capability dropped, a unique
#     scratch vhost and site id, the configuration mounted read-only), checks
#     that its process runs as uid 65532, publishes one valid event
#     (schemas/fixtures/valid/user.created.json) to moodle.ingest as the Moodle
#     plugin does and receives it from moodle.events, runs the image's health
#     check (`podman healthcheck run`), and stops it with SIGTERM (exit 0).
# Everything it made (container, vhost, temp files) is removed at the end; the
# image stays cached. Run time: about 30 s when the binaries are built.
# Exit status 0 when every check passed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/deploy/dev/lib.sh"
MAX_IMAGE_MB="${MAX_IMAGE_MB:-64}"

. "$ROOT/deploy/check/lib.sh"

TMP="$(mktemp -d)"
RUN_ID="$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
CTR="relaycheck-image-$RUN_ID"
VHOST="relaycheck-image-$RUN_ID"
SITE="img-$RUN_ID"
VHOST_MADE=""
WORKER=""
BCTR=""
cleanup() {
    if [ -n "$WORKER" ]; then
        kill -TERM "$WORKER" 2>/dev/null || true
        wait "$WORKER" 2>/dev/null || true
    fi
    if [ -n "$BCTR" ]; then
        buildah umount "$BCTR" >/dev/null 2>&1 || true
        buildah rm "$BCTR" >/dev/null 2>&1 || true
    fi
    podman rm -f -t 5 "$CTR" >/dev/null 2>&1 || true
    [ -z "$VHOST_MADE" ] || rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v php >/dev/null 2>&1 || need+=(php-cli)
[ -f /usr/share/php/PhpAmqpLib/autoload.php ] || need+=(php-amqplib)
command -v rabbitmqctl >/dev/null 2>&1 || need+=(rabbitmq-server)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
port_open 5672 || fail "no RabbitMQ on 127.0.0.1:5672 (make rabbitmq)"

PROFILE="${RELAY_IMAGE_PROFILE:-}"
if [ -z "$PROFILE" ]; then
    PROFILE=debug
    [ -x "$ROOT/target/release/relay-worker" ] && [ -x "$ROOT/target/release/dlq-replayer" ] && PROFILE=release
fi
TAG="$("$ROOT/deploy/container/build-local.sh" --profile "$PROFILE" | tail -n1)"
pass "built $TAG with build-local.sh ($PROFILE binaries, no base image pulled)"

# --- the image's configuration -------------------------------------------------------
bytes="$(podman image inspect --format '{{.Size}}' "$TAG")"
mb=$(((bytes + 1048575) / 1048576))
if [ "$PROFILE" = debug ] || [ "$mb" -le "$MAX_IMAGE_MB" ]; then
    pass "image size: $mb MB ($PROFILE binaries$([ "$PROFILE" = debug ] || echo ", limit $MAX_IMAGE_MB MB"))"
else
    flunk "image size: $mb MB, above $MAX_IMAGE_MB MB"
fi
config="$(podman image inspect --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}|{{json .Config.Env}}' "$TAG")"
if [[ "$config" == '65532:65532|["/usr/local/bin/relay-worker"]|{"9464/tcp":{}}|'*'"RELAY_WORKER_LISTEN=0.0.0.0:9464"'* ]]; then
    pass "image config: user 65532:65532, entrypoint relay-worker, port 9464, RELAY_WORKER_LISTEN=0.0.0.0:9464"
else
    flunk "image config is $config"
fi
health="$(podman image inspect --format '{{json .Config.Healthcheck}}' "$TAG" 2>/dev/null || true)"
if grep -q '"Test":\["CMD","/usr/local/bin/relay-worker","health"' <<<"$health"; then
    pass "HEALTHCHECK kept (docker format): $(sed -E 's/.*"Test":\[([^]]*)\].*/\1/' <<<"$health")"
else
    flunk "the image has no HEALTHCHECK running relay-worker health: $health"
fi

# --- how to run it here ------------------------------------------------------------
# podman when it can run containers; where it cannot (a sandbox that forbids
# setrlimit: crun and runc both fail setting RLIMIT_NOFILE), the image's own
# root file system, mounted by buildah, under chroot as uid 65532: the same
# files, user and environment, without namespaces, --read-only or
# --cap-drop (there, "read-only friendly" is checked as "wrote nothing").
MODE=podman
CHROOT="$(command -v chroot || echo /usr/sbin/chroot)"
if ! err="$(podman run --rm --network none --read-only "$TAG" --version 2>&1 >/dev/null)"; then
    MODE=chroot
    why="$(grep -v 'level=error' <<<"$err" | tail -n1)"
    printf 'note   podman cannot run containers here (%s): running the image root fs with chroot instead\n' "$why"
    BCTR="$(buildah from --pull-never --name "$CTR-fs" "$TAG")"
    ROOTFS="$(buildah mount "$BCTR")"
fi
in_image() { # ENV... -- PROGRAM ARGS...: one program of the image, as uid 65532
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    if [ "$MODE" = podman ]; then
        local e=()
        for v in "${envs[@]}"; do e+=(-e "$v"); done
        podman run --rm --network host --read-only --cap-drop ALL "${e[@]}" \
            -v "$TMP/relay-worker.toml:/etc/relay-worker/relay-worker.toml:ro" --entrypoint "$1" "$TAG" "${@:2}"
    else
        env -i RELAY_WORKER_LISTEN=0.0.0.0:9464 "${envs[@]}" "$CHROOT" --userspec=65532:65532 "$ROOTFS" "$@"
    fi
}

# guest/guest is the machine's test broker's well-known login (loopback only).
rabbitmqctl -q add_vhost "$VHOST" >/dev/null
VHOST_MADE=1
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
HTTP_PORT=""
while [ -z "$HTTP_PORT" ]; do
    p=$((20000 + RANDOM % 20000))
    port_open "$p" || HTTP_PORT="$p"
done
cat >"$TMP/relay-worker.toml" <<EOF
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/$VHOST"
[worker]
shutdown_grace_s = 5
[retry]
delays_s = [1, 2]
[[sites]]
id = "$SITE"
EOF
chmod 0644 "$TMP/relay-worker.toml"
chmod 0755 "$TMP"
if [ "$MODE" = chroot ]; then
    mkdir -p "$ROOTFS/etc/relay-worker"
    cp "$TMP/relay-worker.toml" "$ROOTFS/etc/relay-worker/relay-worker.toml"
    touch "$TMP/before-run"
fi
# The configuration by RELAY_CONFIG (not --config): the health check runs with
# the container's environment and finds worker.listen the same way.
RUN_ENV=(RELAY_CONFIG=/etc/relay-worker/relay-worker.toml "RELAY_WORKER_LISTEN=127.0.0.1:$HTTP_PORT")

# --- the programs run in it -------------------------------------------------------
if out="$(in_image -- /usr/local/bin/relay-worker --version 2>&1)" && [[ "$out" == "relay-worker "* ]] &&
    out2="$(in_image -- /usr/local/bin/dlq-replayer --version 2>&1)" && [[ "$out2" == "dlq-replayer "* ]]; then
    pass "in the image ($MODE): '$out' and '$out2' run (every library is there)"
else
    flunk "the programs do not run in the image ($MODE): ${out:-} ${out2:-}"
fi

# --- the worker in the image, on the machine's RabbitMQ ---------------------------
if [ "$MODE" = podman ]; then
    podman run -d --name "$CTR" --network host --read-only --cap-drop ALL \
        --security-opt no-new-privileges \
        -v "$TMP/relay-worker.toml:/etc/relay-worker/relay-worker.toml:ro" \
        -e "${RUN_ENV[0]}" -e "${RUN_ENV[1]}" "$TAG" >/dev/null
    running() { [ "$(podman inspect --format '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ]; }
    worker_log() { podman logs "$CTR" 2>&1 | tail -n5; }
    WPID="$(podman inspect --format '{{.State.Pid}}' "$CTR" 2>/dev/null || echo 0)"
else
    env -i RELAY_WORKER_LISTEN=0.0.0.0:9464 "${RUN_ENV[@]}" \
        "$CHROOT" --userspec=65532:65532 "$ROOTFS" /usr/local/bin/relay-worker 2>"$TMP/worker.log" &
    WORKER=$!
    running() { kill -0 "$WORKER" 2>/dev/null; }
    worker_log() { tail -n5 "$TMP/worker.log"; }
    WPID="$WORKER"
fi
ready=""
for _ in $(seq 1 150); do
    [ "$(curl -s --max-time 1 "http://127.0.0.1:$HTTP_PORT/readyz" 2>/dev/null)" = ready ] && { ready=1; break; }
    running || break
    sleep 0.2
done
if [ -n "$ready" ]; then
    pass "the worker in the image ($MODE) connected to RabbitMQ (vhost $VHOST, site $SITE) and is ready"
else
    flunk "the worker in the image did not become ready: $(worker_log)"
fi
uids="$(awk '/^Uid:/ {print $2 "," $3}' "/proc/$WPID/status" 2>/dev/null || true)"
if [ "$uids" = "65532,65532" ]; then
    pass "its process runs as uid 65532 (real and effective), not root"
else
    flunk "its process runs as uid '$uids', expected 65532"
fi

# One event as the plugin publishes it, received downstream (php-amqplib).
if [ -n "$ready" ] && out="$(VHOST="$VHOST" SITE="$SITE" FIXTURE="$ROOT/schemas/fixtures/valid/user.created.json" \
    timeout 60 php 2>&1 <<'PHP'
<?php
require_once('/usr/share/php/PhpAmqpLib/autoload.php');
use PhpAmqpLib\Connection\AMQPStreamConnection;
use PhpAmqpLib\Message\AMQPMessage;

$site = getenv('SITE');
$conn = new AMQPStreamConnection('127.0.0.1', 5672, 'guest', 'guest', getenv('VHOST'));
$ch = $conn->channel();
// A downstream queue of its own, bound to the site's events.
[$queue] = $ch->queue_declare('', false, false, true, true);
$ch->queue_bind($queue, 'moodle.events', $site . '.#');
$event = json_decode(file_get_contents(getenv('FIXTURE')), true);
$id = sprintf('%04x%04x-%04x-4%03x-a%03x-%012x', random_int(0, 0xffff), random_int(0, 0xffff),
    random_int(0, 0xffff), random_int(0, 0xfff), random_int(0, 0xfff), random_int(0, 0xffffffffffff));
$event['id'] = $id;
$event['moodlesite'] = $site;
$event['sequence'] = sprintf('%020d', 1);
$key = $site . '.' . preg_replace('/^moodle\./', '', $event['type']);
$ch->confirm_select();
$ch->basic_publish(new AMQPMessage(json_encode($event), [
    'message_id' => $id, 'content_type' => 'application/cloudevents+json',
    'delivery_mode' => 2, 'app_id' => 'local_eventrelay',
]), 'moodle.ingest', $key, true);
$ch->wait_for_pending_acks_returns(10);
$deadline = microtime(true) + 20;
while (microtime(true) < $deadline) {
    $msg = $ch->basic_get($queue, true);
    if ($msg !== null) {
        $got = json_decode($msg->getBody(), true);
        if (($got['id'] ?? '') === $id) {
            echo "relayed $key id $id\n";
            exit(0);
        }
    }
    usleep(100000);
}
echo "event $id ($key) did not arrive on moodle.events within 20 s\n";
exit(1);
PHP
)"; then
    pass "an event published to moodle.ingest came out on moodle.events: $out"
else
    flunk "event through the image's worker: ${out:-worker not ready}"
fi

if [ "$MODE" = podman ]; then
    if hc="$(podman healthcheck run "$CTR" 2>&1)"; then
        pass "podman healthcheck run: ${hc:-healthy} (the image's HEALTHCHECK: relay-worker health on worker.listen)"
    else
        flunk "podman healthcheck run: ${hc:-unhealthy}"
    fi
elif hc="$(in_image "${RUN_ENV[@]}" -- /usr/local/bin/relay-worker health --timeout-ms 3000 2>&1)"; then
    pass "the image's HEALTHCHECK command, run in the image's root fs: $hc"
else
    flunk "relay-worker health in the image's root fs: $hc"
fi

if [ "$MODE" = podman ]; then
    podman stop -t 30 "$CTR" >/dev/null 2>&1 || true
    code="$(podman inspect --format '{{.State.ExitCode}}' "$CTR" 2>/dev/null || echo '?')"
else
    kill -TERM "$WORKER" 2>/dev/null || true
    code=0
    wait "$WORKER" || code=$?
    WORKER=""
fi
if [ "$code" = 0 ]; then
    pass "SIGTERM: the worker shut down cleanly, exit status 0"
else
    flunk "after SIGTERM the worker's exit status is $code: $(worker_log)"
fi
# Stopped: the health check must now fail (it can fail).
if in_image "${RUN_ENV[@]}" -- /usr/local/bin/relay-worker health --timeout-ms 1000 >/dev/null 2>&1; then
    flunk "relay-worker health said healthy with no worker running"
else
    pass "with the worker stopped, relay-worker health exits non-zero"
fi
if [ "$MODE" = chroot ]; then
    written="$(find "$ROOTFS" -xdev -newer "$TMP/before-run" ! -path "$ROOTFS/etc/relay-worker*" 2>/dev/null | head -n5)"
    if [ -z "$written" ]; then
        pass "the worker wrote nothing in the image's root file system (read-only friendly)"
    else
        flunk "the worker wrote into its root file system: $written"
    fi
fi

summary "container"
