"""The build system as an administrator uses it: dependency check, install."""
import os
import pwd
import subprocess
from pathlib import Path

import pytest

SRC = Path(os.environ.get("POSTERN_SRC", Path(__file__).resolve().parents[2]))
IS_ROOT = os.geteuid() == 0


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, **kw)


def test_deps_names_what_is_missing_when_not_root():
    env = dict(os.environ, DEPS_EXTRA="postern-no-such-package-xyz")
    argv = ["sh", str(SRC / "mk" / "deps.sh")]
    if IS_ROOT:
        # As root the script would try to install; check the non-root answer.
        nobody = pwd.getpwnam("nobody")
        argv = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                "--clear-groups", "--"] + argv
    r = run(argv, env=env, cwd="/")
    assert r.returncode == 1
    assert "postern-no-such-package-xyz" in r.stderr
    assert "apt-get install" in r.stderr


def test_deps_quiet_when_nothing_is_missing():
    r = run(["sh", str(SRC / "mk" / "deps.sh")], env=dict(os.environ, CHECK_ONLY="1"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""


def test_make_install_honours_prefix_and_destdir(tmp_path):
    dest = tmp_path / "root"
    build = tmp_path / "build"
    r = run(["make", "-C", str(SRC), "--no-print-directory", "install", "PREFIX=/usr",
             f"DESTDIR={dest}", f"BUILD={build}", "CFLAGS=-O0 -g"])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for cmd in ("postern", "postconf", "postmap"):
        p = dest / "usr/sbin" / cmd
        assert p.is_file() and os.access(p, os.X_OK), cmd
    assert (dest / "usr/libexec/postern/master").is_file()
    assert not (dest / "usr/sbin/master").exists()
    assert (dest / "usr/share/man/man8/master.8").is_file()
    assert (dest / "usr/share/man/man1/postconf.1").is_file()
    assert (dest / "usr/share/man/man5/main.cf.5").is_file()
    assert (dest / "etc/postern/main.cf").is_file()
    assert (dest / "etc/postern/master.cf").is_file()
    assert (dest / "usr/share/postern/postern.service").is_file()
    # The install paths are compiled in: the installed postconf knows them.
    r = run([str(dest / "usr/sbin/postconf"), "-d", "daemon_directory", "command_directory",
             "config_directory"])
    assert r.returncode == 0, r.stderr
    assert "daemon_directory = /usr/libexec/postern" in r.stdout
    assert "command_directory = /usr/sbin" in r.stdout
    assert "config_directory = /etc/postern" in r.stdout
    # A second install keeps an edited main.cf and puts the new default beside it.
    (dest / "etc/postern/main.cf").write_text("myhostname = edited.example\n")
    r = run(["make", "-C", str(SRC), "--no-print-directory", "install", "PREFIX=/usr",
             f"DESTDIR={dest}", f"BUILD={build}", "CFLAGS=-O0 -g"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert (dest / "etc/postern/main.cf").read_text() == "myhostname = edited.example\n"
    assert (dest / "etc/postern/main.cf.default").is_file()
