#!/bin/sh
# deps.sh - install the Debian packages Postern builds and tests with.
#
# Run as root: one apt-get update, then one install of what is missing.
# Run as another user: name exactly what is missing and fail.
# With CHECK_ONLY=1 only reports.

PKGS="gcc make pkg-config libssl-dev libdb5.3-dev db5.3-util libcap-dev libpcre2-dev
libclamav-dev libevent-dev libunbound-dev libcmocka-dev python3 python3-pytest
swaks python3-aiosmtpd python3-dnslib procps openssl s-nail mailutils
msmtp dovecot-core fail2ban testssl.sh"

# DEPS_EXTRA names further packages (used by the tests of this script).
missing=""
for p in $PKGS ${DEPS_EXTRA:-}; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)
    [ "$st" = "installed" ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || [ -n "$CHECK_ONLY" ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: install them as root with: apt-get install$missing" >&2
    exit 1
fi
echo "deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null || { echo "deps: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing || {
    echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
