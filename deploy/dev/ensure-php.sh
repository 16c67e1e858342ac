#!/usr/bin/env bash
# Makes sure PHP 8.1+ with php-amqplib and PHPUnit is available for the plugin's
# plain-PHP tests, installing Debian's packages for what is missing.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

missing=()
command -v php >/dev/null 2>&1 || missing+=(php-cli)
command -v phpunit >/dev/null 2>&1 || missing+=(phpunit)
# php-amqplib is the plugin's AMQP client (a declared dependency, never copied in).
[ -f /usr/share/php/PhpAmqpLib/autoload.php ] || missing+=(php-amqplib)
if command -v php >/dev/null 2>&1; then
    php -m | grep -qx mbstring || missing+=(php-mbstring)
    php -m | grep -qx dom || missing+=(php-xml)
else
    missing+=(php-mbstring php-xml)
fi

if [ ${#missing[@]} -gt 0 ]; then
    say "PHP: the plugin's tests need ${missing[*]}; installing them from Debian's packages"
    apt_install "${missing[@]}"
fi

php -r 'exit(PHP_VERSION_ID >= 80100 ? 0 : 1);' ||
    fail "PHP $(php -r 'echo PHP_VERSION;') is too old: Moodle 4.5 and this plugin need PHP 8.1 or later"
say "PHP: $(php -r 'echo PHP_VERSION;') with php-amqplib and $(phpunit --version | head -n1)"
