#!/usr/bin/env bash
# Builds the relay's container image on this machine WITHOUT pulling anything:
# no base image, no registry. The result matches deploy/container/Containerfile
# (same user, entrypoint, environment, port, health check, labels), but its
# root file system is assembled here from:
#   - target/<profile>/relay-worker and dlq-replayer (cargo build, if needed),
#   - exactly the shared libraries `ldd` lists for them, and the dynamic loader,
#     copied from this host (so build on the Debian release you want to ship),
#   - /etc/passwd and /etc/group with root and nonroot (65532) only,
#   - the host's CA certificates, for amqps:// and https:// (Moodle).
# It is then committed with buildah from `scratch`, in the docker format,
# because the OCI format has no HEALTHCHECK and would drop it.
#
# Usage: deploy/container/build-local.sh [--profile release|debug] [--tag NAME:TAG]
#   --profile debug  uses the debug binaries, debug info stripped (a quick
#                    structural image for tests, tagged <version>-debug: not
#                    optimised, not for use).
# Prints the image's name on the last line of stdout. Needs root (or
# password-less sudo) only to install buildah when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
. "$ROOT/deploy/dev/lib.sh"

PROFILE=release
TAG=""
while [ $# -gt 0 ]; do
    case "$1" in
    --profile) PROFILE="${2:?--profile needs release or debug}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs NAME:TAG}"; shift 2 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument $1 (see --help)" ;;
    esac
done
case "$PROFILE" in
release | debug) ;;
*) fail "--profile must be release or debug, not $PROFILE" ;;
esac

# The workspace's version, [workspace.package] in Cargo.toml.
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
[ -n "$VERSION" ] || fail "no version in $ROOT/Cargo.toml [workspace.package]"
if [ -z "$TAG" ]; then
    TAG="moodle-event-relay/relay-worker:$VERSION"
    [ "$PROFILE" = release ] || TAG="$TAG-$PROFILE"
fi

missing=()
command -v buildah >/dev/null 2>&1 || missing+=(buildah)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
command -v ldd >/dev/null 2>&1 || missing+=(libc-bin)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# The binaries: cargo does nothing when they are up to date.
cargo_flags=(--locked -p relay-worker -p dlq-replayer)
[ "$PROFILE" = release ] && cargo_flags+=(--release)
say "building the binaries (cargo build ${cargo_flags[*]}; nothing to do if up to date)"
(cd "$ROOT" && cargo build -q "${cargo_flags[@]}") || fail "cargo build failed"
BIN="$ROOT/target/$PROFILE"

# The root file system, staged under target/ (rebuilt each time).
STAGE="$ROOT/target/container/rootfs-$PROFILE"
rm -rf "$STAGE"
mkdir -p "$STAGE/usr/local/bin" "$STAGE/etc/ssl/certs"
install -m 0755 "$BIN/relay-worker" "$BIN/dlq-replayer" "$STAGE/usr/local/bin/"
# Debug info (the release profile's line tables: ~100 MB per binary here)
# is dropped from the copies; the code and the symbol table stay, so a
# panic's backtrace still names the functions, without file and line. Keep
# target/release's binaries to map an address to a line when needed.
command -v strip >/dev/null 2>&1 || apt_install binutils
strip --strip-debug "$STAGE/usr/local/bin/relay-worker" "$STAGE/usr/local/bin/dlq-replayer"

# Every library the loader will look for, at the path it looks: `ldd` prints
# `name => /path (addr)` per library and `/path (addr)` for the loader itself;
# linux-vdso is the kernel's and has no file.
libs="$(ldd "$BIN/relay-worker" "$BIN/dlq-replayer" |
    sed -nE 's#^[[:space:]]*([^[:space:]]+ => )?(/[^[:space:]]+) \(0x[0-9a-f]+\)$#\2#p' | sort -u)"
[ -n "$libs" ] || fail "ldd listed no libraries for $BIN/relay-worker: is it a dynamic executable?"
if ldd "$BIN/relay-worker" "$BIN/dlq-replayer" | grep -q 'not found'; then
    fail "a library of the binaries is missing on this host: $(ldd "$BIN/relay-worker" | grep 'not found')"
fi
for lib in $libs; do
    # -L: the file itself, under the name the binary asks for.
    mkdir -p "$STAGE$(dirname "$lib")"
    cp -L "$lib" "$STAGE$lib"
    chmod 0755 "$STAGE$lib"
done

# Only the two users the image knows: the container runs as nonroot (65532),
# the same uid and gid as distroless' `nonroot`, so volumes and
# runAsUser settings work with either image.
cat >"$STAGE/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$STAGE/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
# Host names (a broker called `rabbitmq` in compose) resolve through
# /etc/hosts, then DNS; glibc 2.34+ has both built in, no libnss_* needed.
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$STAGE/etc/nsswitch.conf"
cp -L /etc/ssl/certs/ca-certificates.crt "$STAGE/etc/ssl/certs/ca-certificates.crt"
chmod -R u=rwX,go=rX "$STAGE/etc"

revision="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain -- relay-worker relay-contract dlq-replayer schemas Cargo.lock 2>/dev/null)" ]; then
    revision="$revision-dirty"
fi

say "assembling $TAG from scratch with buildah ($(du -sh "$STAGE" | cut -f1) of files)"
CTR=""
cleanup() { [ -z "$CTR" ] || buildah rm "$CTR" >/dev/null 2>&1 || true; }
trap cleanup EXIT
# The docker format from the start: buildah drops a HEALTHCHECK set on an
# OCI-format working container. buildah splits the health check's command at
# spaces into exec form (["CMD", "/usr/local/bin/relay-worker", "health", …]):
# a JSON array there would be split into nonsense.
export BUILDAH_FORMAT=docker
CTR="$(buildah from --name "relay-worker-build-$$" scratch)"
# Copied files belong to root (buildah's default): nonroot can read and run
# them, not change them.
buildah copy --quiet "$CTR" "$STAGE" / >/dev/null
buildah config \
    --user 65532:65532 \
    --env RELAY_WORKER_LISTEN=0.0.0.0:9464 \
    --port 9464/tcp \
    --workingdir / \
    --entrypoint '["/usr/local/bin/relay-worker"]' \
    --cmd '' \
    --stop-signal SIGTERM \
    --healthcheck 'CMD /usr/local/bin/relay-worker health --timeout-ms 3000' \
    --healthcheck-interval 30s \
    --healthcheck-timeout 5s \
    --healthcheck-start-period 15s \
    --healthcheck-retries 3 \
    --label org.opencontainers.image.title=relay-worker \
    --label "org.opencontainers.image.description=Moodle Event Relay: relay-worker and dlq-replayer" \
    --label "org.opencontainers.image.version=$VERSION" \
    --label "org.opencontainers.image.revision=$revision" \
    --label org.opencontainers.image.licenses=GPL-3.0-or-later \
    --label "io.moodle-event-relay.build=build-local.sh, $PROFILE binaries, libraries of $(. /etc/os-release && echo "$PRETTY_NAME")" \
    "$CTR"
# --format docker keeps the HEALTHCHECK; the commit replaces an older image of
# the same tag (which stays, untagged, until `podman image prune`).
buildah commit --quiet --format docker --rm "$CTR" "$TAG" >/dev/null
CTR=""
say "built $TAG: $(buildah images --format '{{.Size}}' "$TAG" | head -n1)"
echo "$TAG"
