# Shared helpers for the development set-up scripts. Source it; do not run it.

say() { printf '==> %s\n' "$*" >&2; }
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through non-interactive
# sudo otherwise, or explains what to run by hand.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo -n "$@"
    else
        fail "this needs root: run '$*' as root (or give this user password-less sudo), then retry"
    fi
}

APT_UPDATED=""
# Installs Debian packages, refreshing the package lists once per run.
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        fail "apt-get not found: install these packages with your system's package manager: $*"
    if [ -z "$APT_UPDATED" ]; then
        say "refreshing Debian package lists (apt-get update)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing Debian packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
