"""Shared harness for Postern's integration tests.

Every test gets whole private instances of the mail system in a temporary
directory under /tmp (mode 0755, so mail_owner can reach the queue): conf/
with main.cf and master.cf, queue/, the log file maillog, and sanitizer/
directories (root/sanitizer for commands, queue/sanitizer for master and the
services, chrooted or not); any ASan/UBSan report found there fails the
test at teardown. The instance is
started with the real `postern start`, so the tests exercise the same path
an administrator does, and is always stopped at teardown, with any process
left of it killed (found by its session id, which is master's pid).

Fixtures
    postern_instance   factory: postern_instance(master_cf, main_cf=None,
                       start=True, user=None) -> Instance
    free_port          function returning a free TCP port on 127.0.0.1
    build, src         paths from $POSTERN_BUILD and $POSTERN_SRC

Instance helpers
    .postern(*args)            run `postern -c CONF ARGS`, CompletedProcess
    .start() / .stop() / .reload()
    .master_pid()              pid from the pid file (None when absent)
    .log_text(), .log_mark()   the mail log, and a position in it
    .wait_for_log(regex, timeout=10, since=0) -> re.Match (fails the test on timeout)
    .count_log(regex, since=0)
    .service_pids(name)        live processes of a master.cf service
    .instance_pids()           every live process of the instance
    .write_main_cf(extra) / .write_master_cf(text)
    .helper(name)              path of tests/helpers/NAME in the build
    .connect(port, family)     a LineClient (send/recv lines, timeouts)

Environment: POSTERN_BUILD (default ../../build-san), POSTERN_SRC.
Running as root (CI), mail_owner is `postern` and setgid_group `postdrop`;
both are created when missing. Otherwise everything runs as the invoking user.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

SRC = Path(os.environ.get("POSTERN_SRC", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("POSTERN_BUILD", SRC / "build-san"))
IS_ROOT = os.geteuid() == 0
MAIL_OWNER = "postern"
SETGID_GROUP = "postdrop"
CMD_TIMEOUT = 30          # seconds any postern command may take
TEARDOWN_KILL_WAIT = 5    # seconds for leftovers to die after SIGKILL


def ensure_mail_user():
    """As root: make sure mail_owner and setgid_group exist (useradd --system)."""
    if not IS_ROOT:
        return
    try:
        grp.getgrnam(SETGID_GROUP)
    except KeyError:
        subprocess.run(["groupadd", "--system", SETGID_GROUP], check=True)
    try:
        pwd.getpwnam(MAIL_OWNER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                        MAIL_OWNER], check=True)


def get_free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port the OS says is free right now."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def proc_stat(pid):
    """(ppid, session) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[3])


def proc_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def pid_alive(pid):
    return proc_stat(pid) is not None


class LineClient:
    """A line-oriented TCP client with timeouts."""

    def __init__(self, port, family=socket.AF_INET, host=None, timeout=10):
        host = host or ("::1" if family == socket.AF_INET6 else "127.0.0.1")
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = b""

    def recv(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(4096)
            if not data:
                raise EOFError("connection closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode()

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def ask(self, line):
        self.send(line)
        return self.recv()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Instance:
    """One private Postern instance under root/."""

    def __init__(self, root, user=None):
        self.root = Path(root)
        self.user = user
        self.conf_dir = self.root / "conf"
        self.queue_dir = self.root / "queue"
        self.log_path = self.root / "maillog"
        # Sanitizer reports go to "sanitizer/" relative to the working
        # directory: root/ for commands (run there), queue/ for master and
        # the services (they chdir to queue_directory; a chrooted service
        # sees the same directory as /sanitizer).
        self.san_dirs = [self.root / "sanitizer", self.queue_dir / "sanitizer"]
        self.conf_dir.mkdir()
        self.queue_dir.mkdir(mode=0o755)
        for d in self.san_dirs:
            d.mkdir()
            os.chmod(d, 0o1777)   # services running as mail_owner write here too
        self.log_path.touch()
        self.last_master_pid = None
        if user:
            pw = pwd.getpwnam(user)
            for p in (self.root, self.conf_dir, self.queue_dir, self.log_path):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.env = dict(os.environ)
        self.env.pop("MAIL_CONFIG", None)
        self.env["ASAN_OPTIONS"] = ("log_path=sanitizer/asan:detect_leaks=0:"
                                    "abort_on_error=0:handle_abort=1")
        self.env["UBSAN_OPTIONS"] = "log_path=sanitizer/ubsan:print_stacktrace=1"

    # -- configuration -----------------------------------------------------

    def default_main_cf(self):
        if self.user:
            owner, group = self.user, grp.getgrgid(pwd.getpwnam(self.user).pw_gid).gr_name
        elif IS_ROOT:
            owner, group = MAIL_OWNER, SETGID_GROUP
        else:
            owner = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
        return {
            "queue_directory": str(self.queue_dir),
            "daemon_directory": str(BUILD / "bin"),
            "maillog_file": str(self.log_path),
            "mail_owner": owner,
            "setgid_group": group,
            "service_throttle_time": "2s",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "all" if have_ipv6() else "ipv4",
            "import_environment": "MAIL_CONFIG TZ LANG=C ASAN_OPTIONS UBSAN_OPTIONS",
        }

    def write_main_cf(self, extra=None):
        params = self.default_main_cf()
        params.update(extra or {})
        text = "".join(f"{k} = {v}\n" for k, v in params.items())
        self._write(self.conf_dir / "main.cf", text)

    def write_master_cf(self, text):
        self._write(self.conf_dir / "master.cf", text)

    def _write(self, path, text):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.replace(tmp, path)

    def helper(self, name):
        return str(BUILD / "tests" / "helpers" / name)

    # -- commands ----------------------------------------------------------

    def command(self, argv, timeout=CMD_TIMEOUT):
        if self.user:
            argv = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}",
                    "--init-groups", "--"] + argv
        return subprocess.run(argv, env=self.env, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, cwd=self.root)

    def postern(self, *args, timeout=CMD_TIMEOUT):
        return self.command([str(BUILD / "bin" / "postern"), "-c", str(self.conf_dir), *args],
                            timeout=timeout)

    def start(self):
        r = self.postern("start")
        assert r.returncode == 0, f"postern start failed:\n{r.stderr}\n{self.log_text()}"
        self.last_master_pid = self.master_pid()
        assert self.last_master_pid, "no master pid after start"
        self.wait_for_log(r"daemon started -- version")
        return r

    def stop(self):
        r = self.postern("stop")
        return r

    def reload(self, since=None):
        r = self.postern("reload")
        assert r.returncode == 0, r.stderr
        return r

    def master_pid(self):
        path = self.queue_dir / "pid" / "master.pid"
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() and pid_alive(int(text)) else None

    # -- observation -------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_mark(self):
        return len(self.log_text())

    def count_log(self, regex, since=0):
        return len(re.findall(regex, self.log_text()[since:], re.M))

    def wait_for_log(self, regex, timeout=10, since=0):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(regex, self.log_text()[since:], re.M)
            if m:
                return m
            if time.monotonic() > deadline:
                pytest.fail(f"no log line matching {regex!r} within {timeout}s; log:\n"
                            + self.log_text()[-4000:])
            time.sleep(0.05)

    def instance_pids(self):
        """Every live process in master's session (master included)."""
        sid = self.last_master_pid
        if not sid:
            return []
        out = []
        for pid in all_pids():
            st = proc_stat(pid)
            if st and st[1] == sid:
                out.append(pid)
        return out

    def service_pids(self, service):
        """Live children of master started for master.cf service NAME."""
        master = self.last_master_pid
        out = []
        for pid in all_pids():
            st = proc_stat(pid)
            if not st or st[0] != master:
                continue
            argv = proc_cmdline(pid)
            for i in range(len(argv) - 1):
                if argv[i] == b"-n" and argv[i + 1] == service.encode():
                    out.append(pid)
                    break
        return out

    def wait_until(self, predicate, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}; log:\n" + self.log_text()[-4000:])
            time.sleep(0.05)

    def connect(self, port, family=socket.AF_INET, timeout=10):
        return LineClient(port, family, timeout=timeout)

    # -- teardown ----------------------------------------------------------

    def cleanup(self):
        """Stop the instance; kill anything left; return leftover pids found."""
        leftovers = []
        if self.master_pid():
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                pass
        pids = self.instance_pids()
        if pids:
            leftovers = pids
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            deadline = time.monotonic() + TEARDOWN_KILL_WAIT
            while self.instance_pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        return leftovers

    def sanitizer_reports(self):
        out = []
        for d in self.san_dirs:
            for p in sorted(d.iterdir()) if d.is_dir() else []:
                out.append(f"== {p}\n{p.read_text(errors='replace')[:4000]}")
        return out


@pytest.fixture(scope="session")
def build():
    if not (BUILD / "bin" / "master").exists():
        pytest.fail(f"{BUILD}/bin/master is missing: build first (make SANITIZE=1)")
    return BUILD


@pytest.fixture(scope="session")
def src():
    return SRC


@pytest.fixture
def free_port():
    return get_free_port


@pytest.fixture
def postern_instance(build):
    """Factory for private instances; all of them are stopped at teardown."""
    ensure_mail_user()
    made = []

    def make(master_cf, main_cf=None, start=True, user=None):
        # Under /tmp with mode 0755: mail_owner must reach queue_directory.
        root = tempfile.mkdtemp(prefix="postern-test-", dir="/tmp")
        os.chmod(root, 0o755)
        inst = Instance(root, user=user)
        made.append(inst)
        inst.write_main_cf(main_cf)
        inst.write_master_cf(master_cf)
        if start:
            inst.start()
        return inst

    yield make

    problems = []
    for inst in made:
        leftovers = inst.cleanup()
        if leftovers:
            problems.append(f"{inst.root}: processes left after stop: {leftovers}")
        reports = inst.sanitizer_reports()
        if reports:
            problems.append(f"{inst.root}: sanitizer reports:\n" + "\n".join(reports))
    for inst in made:
        if not problems:
            shutil.rmtree(inst.root, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems))
