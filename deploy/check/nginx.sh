#!/usr/bin/env bash
# Checks the reverse-proxy limit in front of Moodle's web services
# (deploy/nginx/) with Debian's real nginx:
#   - installs nginx if it is missing (nginx-light, else nginx), and stops and
#     disables the service the package may have started on port 80;
#   - `nginx -t` on the shape relay-worker's proxy_limit test runs (the zone in
#     http {}, the check in an exact location proxying to Moodle);
#   - `nginx -t` on the example Moodle server block (PHP-FPM), with the files
#     laid out as deploy/nginx/README.md installs them.
# The committed files are included as they are (the example's `listen 80` is
# the one line changed, to a port above 1024 so this runs without root).
# One line per check on stdout; exit status 1 when any check fails. Starts no
# process that outlives it, leaves nothing behind but the installed package.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NGINX_DIR="$ROOT/deploy/nginx"
# as_root, say, fail.
# shellcheck source=SCRIPTDIR/../dev/lib.sh
. "$ROOT/deploy/dev/lib.sh"

FAILED=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; FAILED=1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/relay-nginx-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

find_nginx() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true
}

# apt-get install, waiting for a dpkg lock someone else holds; refreshes the
# package lists only when the first attempt cannot find the package.
apt_get_install() {
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
    as_root "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
    say "refreshing Debian package lists (apt-get update)"
    as_root "${apt[@]}" update -qq >/dev/null
    as_root "${apt[@]}" install -y -qq --no-install-recommends "$@" >/dev/null
}

# The package starts nginx on port 80 where services may start (systemd, or
# sysvinit without a policy-rc.d that forbids it): stop it and keep it off.
# Only right after we installed it: an nginx someone runs on purpose is theirs.
stop_package_service() {
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now nginx.service >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/nginx ]; then
        as_root /etc/init.d/nginx stop >/dev/null 2>&1 || true
        as_root update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
}

# The pid of a running package nginx (systemd's, or /run/nginx.pid's), or "".
service_pid() {
    local pid=""
    if [ -d /run/systemd/system ] && systemctl is-active --quiet nginx.service 2>/dev/null; then
        pid="$(systemctl show -p MainPID --value nginx.service 2>/dev/null || true)"
    elif [ -s /run/nginx.pid ]; then
        pid="$(cat /run/nginx.pid 2>/dev/null || true)"
        kill -0 "$pid" 2>/dev/null || [ -d "/proc/$pid" ] || pid=""
    fi
    [ "$pid" = 0 ] && pid=""
    echo "$pid"
}

# --- nginx installed ---------------------------------------------------------
NGINX="$(find_nginx)"
INSTALLED_NOW=""
if [ -z "$NGINX" ]; then
    command -v apt-get >/dev/null 2>&1 ||
        fail "nginx is missing and apt-get is not here: install nginx with your package manager"
    say "nginx: not installed; installing Debian's nginx-light (the proxy_limit test needs a real nginx)"
    apt_get_install nginx-light || apt_get_install nginx ||
        fail "could not install nginx-light or nginx with apt-get"
    INSTALLED_NOW=1
    NGINX="$(find_nginx)"
fi
if [ -n "$NGINX" ] && VERSION="$("$NGINX" -v 2>&1)"; then
    ok "nginx installed: $NGINX (${VERSION#nginx version: })${INSTALLED_NOW:+, installed just now}"
else
    bad "nginx installed: not found in PATH or /usr/sbin after installing"
    exit 1
fi

# --- no package service left on port 80 -------------------------------------
if [ -n "$INSTALLED_NOW" ]; then
    stop_package_service
    PID="$(service_pid)"
    if [ -n "$PID" ]; then
        bad "no nginx service left by the package: pid $PID still runs after stopping it"
    else
        ok "no nginx service left by the package (stopped and disabled if it had started)"
    fi
else
    PID="$(service_pid)"
    if [ -n "$PID" ]; then
        ok "nginx service: one runs (pid $PID), not started by this script; left alone (the test uses its own nginx on a free port)"
    else
        ok "nginx service: none running"
    fi
fi

# --- nginx -t ---------------------------------------------------------------
# Paths nginx would otherwise write under /var/lib/nginx and /var/log/nginx.
common_http() {
    cat <<EOF
    client_body_temp_path "$1/body";
    proxy_temp_path "$1/proxy";
    fastcgi_temp_path "$1/fastcgi";
    access_log off;
EOF
}

# nginx -t on $1/nginx.conf; prints nginx's complaint on failure.
nginx_t() {
    local dir="$1" out
    if out="$("$NGINX" -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" 2>&1)"; then
        return 0
    fi
    printf '%s\n' "$out" | sed 's/^/      /'
    return 1
}

# 1. The shape tests/it/proxy_limit.rs runs: zone in http {}, check in the exact
#    location, proxying to a Moodle.
T1="$WORK/proxy"
mkdir -p "$T1"
cat >"$T1/nginx.conf" <<EOF
pid "$T1/nginx.pid";
error_log "$T1/error.log";
events {}
http {
$(common_http "$T1")
    include "$NGINX_DIR/moodle-webservice-limit.conf";
    server {
        listen 127.0.0.1:18080;
        server_name relay-check;
        location = /webservice/rest/server.php {
            include "$NGINX_DIR/moodle-webservice-limit-req.conf";
            proxy_pass http://127.0.0.1:9;
        }
    }
}
EOF
if nginx_t "$T1"; then
    ok "nginx -t: moodle-webservice-limit.conf in http {}, moodle-webservice-limit-req.conf in location = /webservice/rest/server.php"
else
    bad "nginx -t: the snippets in http {} and in the web-service location (nginx's words above)"
fi

# 2. The example server block, laid out as README.md installs it: the zone in
#    conf.d/, the check in snippets/, next to Debian's own fastcgi snippets.
T2="$WORK/site"
mkdir -p "$T2/conf.d" "$T2/snippets" "$T2/sites-enabled"
ln -s "$NGINX_DIR/moodle-webservice-limit.conf" "$T2/conf.d/"
ln -s "$NGINX_DIR/moodle-webservice-limit-req.conf" "$T2/snippets/"
for debian_file in snippets/fastcgi-php.conf fastcgi.conf; do
    if [ -f "/etc/nginx/$debian_file" ]; then
        ln -s "/etc/nginx/$debian_file" "$T2/$debian_file"
    fi
done
EXAMPLE="$NGINX_DIR/moodle-site.example.conf"
sed 's/^\([[:space:]]*listen[[:space:]]\{1,\}\)80;/\1127.0.0.1:18081;/' "$EXAMPLE" >"$T2/sites-enabled/moodle"
cat >"$T2/nginx.conf" <<EOF
pid "$T2/nginx.pid";
error_log "$T2/error.log";
events {}
http {
$(common_http "$T2")
    include conf.d/*.conf;
    include sites-enabled/*;
}
EOF
if ! [ -f "$T2/snippets/fastcgi-php.conf" ]; then
    bad "nginx -t: moodle-site.example.conf needs Debian's /etc/nginx/snippets/fastcgi-php.conf (package nginx-common)"
elif ! grep -q 'listen[[:space:]]*127.0.0.1:18081;' "$T2/sites-enabled/moodle"; then
    bad "nginx -t: moodle-site.example.conf has no 'listen 80;' line to move to a free port"
elif nginx_t "$T2"; then
    ok "nginx -t: moodle-site.example.conf with the snippets in conf.d/ and snippets/ (PHP-FPM handler)"
else
    bad "nginx -t: moodle-site.example.conf (nginx's words above)"
fi

exit "$FAILED"
