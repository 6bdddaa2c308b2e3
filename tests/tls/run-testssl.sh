#!/bin/sh
# run-testssl.sh - scan smtpd's STARTTLS port with testssl.sh (Debian's
# /usr/bin/testssl) and fail on anything below TLS 1.2 or any vulnerability
# testssl finds.
#
# usage: tests/tls/run-testssl.sh [BUILD_DIR]        (default: build-san)
#
# Starts a private instance in a temporary directory: smtpd on a free port
# of 127.0.0.1 with smtpd_tls_security_level = may and, as a site would run
# it, an RSA and an ECDSA certificate at once (made here with openssl, from
# a private CA), all other TLS settings at Postern's defaults. Then runs
#   testssl --starttls smtp --quiet --color 0 --jsonfile ... 127.0.0.1:PORT
# and reads the JSON findings: it fails (exit 1) when a protocol older than
# TLS 1.2 is offered, or when any vulnerability check (testssl -U: Heartbleed,
# CCS, Ticketbleed, ROBOT, renegotiation, CRIME, BREACH, POODLE, TLS_FALLBACK_SCSV,
# SWEET32, FREAK, DROWN, LOGJAM, BEAST, LUCKY13, Winshock, RC4) reports
# anything above "OK"/"INFO". Findings about the test certificate itself
# (private CA, short lifetime) are printed but do not count.
# TESTSSL_ARGS adds arguments to testssl; MAIN_CF_EXTRA adds main.cf lines
# (e.g. "smtpd_tls_protocols = >=TLSv1" to see the check fail); KEEP=1
# keeps the directory.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-build-san}
case $build in /*) ;; *) build="$top/$build" ;; esac
testssl=${TESTSSL:-/usr/bin/testssl}
[ -x "$build/bin/postern" ] || { echo "run-testssl: $build/bin/postern missing: build first" >&2; exit 2; }
[ -x "$testssl" ] || { echo "run-testssl: $testssl missing (Debian package testssl.sh)" >&2; exit 2; }

dir=$(mktemp -d /tmp/postern-testssl.XXXXXX)
chmod 755 "$dir"
conf="$dir/conf"
cleanup() {
    "$build/bin/postern" -c "$conf" stop >/dev/null 2>&1 || true
    if [ "${KEEP:-0}" = 1 ]; then echo "run-testssl: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT INT TERM
mkdir -p "$conf" "$dir/queue" "$dir/pki" "$dir/sanitizer"
# With a sanitizer build, reports land here (the daemons run as mail_owner).
chmod 1777 "$dir/sanitizer"
export ASAN_OPTIONS="log_path=$dir/sanitizer/asan:detect_leaks=0"
export UBSAN_OPTIONS="log_path=$dir/sanitizer/ubsan:print_stacktrace=1"

if [ "$(id -u)" = 0 ]; then
    getent group postdrop >/dev/null || groupadd --system postdrop
    getent passwd postern >/dev/null || useradd --system --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin --user-group postern
    owner=postern group=postdrop
else
    owner=$(id -un) group=$(id -gn)
fi

# Certificates: a private CA, an RSA and an ECDSA server certificate.
(
    cd "$dir/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
        -subj "/CN=Postern testssl CA" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > leaf.ext
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.key 2>/dev/null
    serial=1
    for k in rsa ec; do
        serial=$((serial + 1))
        openssl req -new -key $k.key -subj /CN=localhost -out $k.csr 2>/dev/null
        openssl x509 -req -in $k.csr -CA ca.crt -CAkey ca.key -set_serial $serial \
            -days 30 -extfile leaf.ext -out $k.crt 2>/dev/null
        cat $k.crt ca.crt > $k-full.crt
    done
    chmod 600 rsa.key ec.key
)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$conf/main.cf" <<CF
queue_directory = $dir/queue
daemon_directory = $build/bin
data_directory = $dir/data
mail_owner = $owner
setgid_group = $group
maillog_file = $dir/maillog
import_environment = MAIL_CONFIG TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = localhost
mydestination = localhost
alias_maps =
alias_database =
smtpd_client_connection_count_limit = 0
smtpd_tls_security_level = may
smtpd_tls_cert_file = $dir/pki/rsa-full.crt
smtpd_tls_key_file = $dir/pki/rsa.key
smtpd_tls_eccert_file = $dir/pki/ec-full.crt
smtpd_tls_eckey_file = $dir/pki/ec.key
${MAIN_CF_EXTRA:-}
CF
cat > "$conf/master.cf" <<CF
127.0.0.1:$port inet n - n - - smtpd
CF
"$build/bin/postern" -c "$conf" start >/dev/null

start=$(date +%s)
echo "run-testssl: testssl --starttls smtp against 127.0.0.1:$port"
set +e
# testssl's exit status counts its findings (the test certificate is not
# trusted, for one): the JSON file is the verdict.
"$testssl" --starttls smtp --quiet --color 0 --warnings off --jsonfile "$dir/testssl.json" \
    ${TESTSSL_ARGS:-} "127.0.0.1:$port" > "$dir/testssl.txt" 2>&1
status=$?
set -e
end=$(date +%s)
if [ ! -s "$dir/testssl.json" ]; then
    cat "$dir/testssl.txt"
    echo "run-testssl: testssl produced no findings (exit $status)" >&2
    exit 1
fi

"$build/bin/postern" -c "$conf" stop >/dev/null 2>&1 || true
if [ -n "$(ls "$dir/sanitizer")" ]; then
    head -c 4000 "$dir"/sanitizer/*
    echo "run-testssl: FAIL sanitizer reports from the daemons" >&2
    exit 1
fi

python3 - "$dir/testssl.json" "$((end - start))" <<'PY'
import json
import sys

# testssl ids of protocols Postern must not offer, and of its -U checks.
OLD = {"SSLv2", "SSLv3", "TLS1", "TLS1_1"}
VULN_PREFIXES = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                 "secure_client_renego", "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV",
                 "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "winshock", "RC4")
GOOD = {"OK", "INFO"}

findings = json.load(open(sys.argv[1]))
if isinstance(findings, dict):
    findings = findings.get("scanResult", findings.get("findings", []))
bad = []
offered = []
for f in findings:
    fid, sev, text = f.get("id", ""), f.get("severity", ""), f.get("finding", "")
    if fid in OLD | {"TLS1_2", "TLS1_3"}:
        if text.startswith("offered"):
            offered.append(fid)
        if fid in OLD and text.startswith("offered"):
            bad.append(f"{fid}: {text}")
    elif fid.startswith(VULN_PREFIXES) and sev not in GOOD:
        bad.append(f"{fid} [{sev}]: {text}")
    if sev in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL"):
        print(f"  note: {fid} [{sev}]: {text}")
print(f"run-testssl: protocols offered: {', '.join(offered) or 'none'}; "
      f"{len(findings)} findings in {sys.argv[2]} s")
if "TLS1_2" not in offered or "TLS1_3" not in offered:
    bad.append("TLS 1.2 and 1.3 must both be offered")
for b in bad:
    print(f"run-testssl: FAIL {b}")
if bad:
    sys.exit(1)
print("run-testssl: no protocol below TLS 1.2, no vulnerability reported")
PY
