"""A private Dovecot authentication server for tests (Debian's dovecot-core).

Dovecot runs from its own configuration in a short temporary directory
under /tmp: base_dir, state_dir and the log live there, users come from a
passwd-file, no mail protocol is enabled (protocols is empty), ssl = no,
and only the auth service gets a UNIX listener (socket_path). Every
internal and login user is the invoking user, and the anvil chroot is
switched off, so it runs as root or as any other user. The system's
Dovecot and its configuration are never touched.

    from dovecot_support import Dovecot, available, dovecot_server

    def test_x(dovecot_server):                 # pytest fixture: a factory
        dv = dovecot_server(users={"alice": "secret"})
        dv.socket_path                           # smtpd_sasl_path (also dv.socket)
        assert dv.check_plain("alice", "secret")

    # or by hand
    dv = Dovecot(tempfile.mkdtemp(dir="/tmp"), {"alice": "secret"}).start()
    ...
    dv.cleanup()

Dovecot(dir=None, users=None, mechanisms="plain login", socket_path=None,
        socket_mode="0666", socket_user=None, failure_delay="0",
        plaintext_auth=True, verbose=True, passdb_args=None, extra_conf="")
    dir            the directory to use (made mode 0755; keep the path short:
                   UNIX socket names are limited to 107 bytes); default a new
                   one under /tmp
    users          {name: password}; a password starting with "{" or "$" is
                   stored as given ("{SHA512-CRYPT}$6$...", "$6$..."),
                   anything else as "{PLAIN}password"
    mechanisms     Dovecot's auth_mechanisms ("plain login cram-md5 scram-sha-256")
    socket_path    where the auth socket goes (default: DIR/auth-client);
                   its directory must exist
    socket_mode / socket_user   the listener's mode and owner (default the
                   invoking user); 0666 lets a daemon running as mail_owner in
                   (a root-run test suite) connect
    failure_delay  auth_failure_delay (Dovecot's default is 2s; 0 keeps tests fast)
    verbose        auth_verbose: Dovecot logs each failure ("Password mismatch")
    passdb_args    the passwd-file passdb's args instead of passwd_path (Dovecot
                   %{variables} allowed, e.g. DIR/passwd-%{secured})
    plaintext_auth False sets disable_plaintext_auth = yes: PLAIN/LOGIN then
                   need "secured" (TLS) unless the client is local
    extra_conf     more dovecot.conf text

    .start(timeout=10)  start and wait until the socket answers a handshake
    .stop()             stop (SIGTERM, then SIGKILL to the process group); files stay
    .cleanup()          stop, then remove DIR
    .set_user(name, password)   add or change a user (Dovecot re-reads the file)
    .handshake()        the server's handshake lines (a list of str)
    .check_plain(user, password) -> bool   one AUTH PLAIN straight over the socket
    .log_text()         Dovecot's log
    .dir, .socket_path (= .socket), .log_path, .passwd_path, .conf_path

available() (also dovecot_available()) tells whether /usr/sbin/dovecot
exists; the fixture skips the test when it does not.
"""

import base64
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

DOVECOT = "/usr/sbin/dovecot"
START_TIMEOUT = 10  # seconds for the socket to answer


def available():
    return os.access(DOVECOT, os.X_OK)


dovecot_available = available


class Dovecot:
    def __init__(self, dir=None, users=None, mechanisms="plain login", socket_path=None,
                 socket_mode="0666", socket_user=None, failure_delay="0",
                 plaintext_auth=True, verbose=True, passdb_args=None, extra_conf=""):
        # Short paths: UNIX socket names are limited to 107 bytes.
        self.dir = str(dir) if dir else tempfile.mkdtemp(prefix="dv", dir="/tmp")
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.socket_path = socket_path or os.path.join(self.dir, "auth-client")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.passwd_path = os.path.join(self.dir, "passwd")
        self.conf_path = os.path.join(self.dir, "dovecot.conf")
        self.users = dict(users or {})
        self.proc = None
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        self._write_passwd()
        conf = f"""# private test instance
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log_path}
instance_name = {os.path.basename(self.dir)}
protocols =
ssl = no
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
disable_plaintext_auth = {"no" if plaintext_auth else "yes"}
auth_mechanisms = {mechanisms}
auth_failure_delay = {failure_delay}
auth_verbose = {"yes" if verbose else "no"}
passdb {{
  driver = passwd-file
  args = {passdb_args or self.passwd_path}
}}
userdb {{
  driver = static
  args = uid={os.getuid()} gid={os.getgid()} home={self.dir}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener {self.socket_path} {{
    mode = {socket_mode}
    user = {socket_user or user}
  }}
}}
{extra_conf}
"""
        with open(self.conf_path, "w") as f:
            f.write(conf)

    # -- users --

    def _write_passwd(self):
        lines = []
        for name, password in self.users.items():
            if not password.startswith(("{", "$")):
                password = "{PLAIN}" + password
            lines.append(f"{name}:{password}\n")
        tmp = self.passwd_path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.passwd_path)

    def set_user(self, name, password):
        self.users[name] = password
        self._write_passwd()

    # -- life --

    def start(self, timeout=START_TIMEOUT):
        self.proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", self.conf_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "stderr"), "w"),
            start_new_session=True)
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                self.handshake()
                return self
            except OSError as e:
                last = e
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"private dovecot did not start ({last}):\n"
                           + self.log_text() + self._stderr())

    @property
    def socket(self):
        return self.socket_path

    def stop(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # -- looking at it --

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.socket_path)
        s.sendall(b"VERSION\t1\t1\nCPID\t%d\n" % os.getpid())
        buf = b""
        while not buf.endswith(b"DONE\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("dovecot closed the connection during the handshake")
            buf += chunk
        return s, buf.decode().splitlines()

    def handshake(self):
        s, lines = self._connect()
        s.close()
        return lines

    def check_plain(self, user, password):
        s, _ = self._connect()
        try:
            resp = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
            s.sendall(f"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tresp={resp}\n".encode())
            line = s.makefile("rb").readline().decode()
            return line.startswith("OK\t1")
        finally:
            s.close()


@pytest.fixture
def dovecot_server():
    """Factory fixture: dovecot_server(**Dovecot args) -> started Dovecot;
    every one is stopped at teardown. Skips when dovecot is not installed."""
    if not available():
        pytest.skip("dovecot-core is not installed (/usr/sbin/dovecot)")
    started = []

    def factory(**kwargs):
        dv = Dovecot(**kwargs)
        started.append(dv)
        return dv.start()

    yield factory
    for dv in started:
        dv.cleanup()
