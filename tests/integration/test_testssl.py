"""smtpd TLS as testssl.sh sees it: tests/tls/run-testssl.sh starts a private
instance and scans its STARTTLS port. The verdict: no protocol below TLS 1.2
is offered and no vulnerability check reports anything.

Here the scan runs testssl's protocol, server preference, server defaults
and vulnerability checks (-p -P -S -U: about 1.5 minutes with the sanitizer
build); `tests/tls/run-testssl.sh` without TESTSSL_ARGS runs testssl's full
default scan (every cipher, client simulations: about 3 to 4 minutes).
The control shows that the script does fail when the server offers TLS 1.1.
"""

import os
import shutil
import subprocess

import pytest

from conftest import BUILD, SRC

SCRIPT = SRC / "tests" / "tls" / "run-testssl.sh"
TESTSSL = "/usr/bin/testssl"

pytestmark = pytest.mark.skipif(not os.access(TESTSSL, os.X_OK) or not shutil.which("openssl"),
                                reason="needs testssl.sh and openssl (Debian packages)")


def run(args, extra_main_cf="", timeout=600):
    env = dict(os.environ, TESTSSL_ARGS=args, MAIN_CF_EXTRA=extra_main_cf)
    return subprocess.run(["sh", str(SCRIPT), str(BUILD)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_testssl_finds_nothing(build):
    r = run("-p -P -S -U")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "protocols offered: TLS1_2, TLS1_3;" in out, out
    assert "no protocol below TLS 1.2, no vulnerability reported" in out, out


def test_testssl_check_fails_when_tls11_is_offered(build):
    r = run("-p", "smtpd_tls_protocols = >=TLSv1.1\n"
                  "tls_medium_cipherlist = DEFAULT:@SECLEVEL=0\n")
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "run-testssl: FAIL TLS1_1: offered" in out, out
