#!/usr/bin/python3
"""bench_relay - relay throughput, Postern and Postfix side by side.

    smtp-source (N clients) -> MTA on 127.0.0.1 -> relayhost [127.0.0.1]:PORT -> smtp-sink

Postfix's load tools (smtp-source, smtp-sink) and a private Postfix
instance come from Debian's postfix package, downloaded with
`apt-get download postfix` and unpacked with `dpkg-deb -x` into a private
folder under /tmp (never installed as the system MTA). Both MTAs run with
their shipped durability (see bench/README.md), the same relayhost, no
per-client connection limit, default_process_limit 100.

For each message size and each client count, smtp-source sends over
persistent sessions (-d) for --seconds, then stops; the figures are

  accepted/s   messages smtp-source completed per second of sending (it
               counts a message when its final "." is sent; the few cut
               short when it is stopped are never acknowledged)
  relayed/s    messages smtp-sink received per second, from the start of
               sending until the last one arrived (end to end)

Postern runs from the optimised build ($POSTERN_BUILD, default ./build).
Every phase is bounded in time; nothing is asserted. Postfix needs root
(its master refuses to run otherwise); without root its rows say why.
"""

import argparse
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SRC = Path(os.environ.get("POSTERN_SRC", Path(__file__).resolve().parents[1]))
os.environ.setdefault("POSTERN_BUILD", str(SRC / "build"))
sys.path.insert(0, str(SRC / "tests" / "integration"))

import conftest  # noqa: E402  the integration harness (Instance, ports, users)

BUILD = conftest.BUILD
PFX_ROOT = Path(os.environ.get("BENCH_POSTFIX_DIR", "/tmp/postern-bench-postfix"))
SOURCE_MESSAGES = 10_000_000   # smtp-source -m: more than any run sends; it is stopped
SINK_BACKLOG = 1024
QUIET_SECONDS = 2.0            # the sink counted nothing new for this long: drained
CMD_TIMEOUT = 120


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=CMD_TIMEOUT, **kw)


# -- Postfix from the Debian package ---------------------------------------

def postfix_unpack():
    """The unpacked package under PFX_ROOT; (root, None) or (None, why)."""
    root = PFX_ROOT / "root"
    if (root / "usr/sbin/smtp-sink").exists():
        return root, None
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return None, "apt-get or dpkg-deb not found"
    pkgdir = PFX_ROOT / "pkg"
    pkgdir.mkdir(parents=True, exist_ok=True)
    # apt runs the download as _apt: the folder must be writable for it.
    os.chmod(pkgdir, 0o777)
    r = run(["apt-get", "download", "postfix"], cwd=pkgdir)
    debs = sorted(pkgdir.glob("postfix_*.deb"))
    if not debs:
        return None, f"apt-get download postfix failed: {(r.stderr or r.stdout).strip()[-300:]}"
    r = run(["dpkg-deb", "-x", str(debs[-1]), str(root)])
    if r.returncode != 0:
        return None, f"dpkg-deb -x failed: {r.stderr.strip()[-300:]}"
    return root, None


def postfix_env(root):
    env = dict(os.environ)
    # The binaries look for their libraries in /usr/lib/postfix (RUNPATH).
    env["LD_LIBRARY_PATH"] = str(root / "usr/lib/postfix")
    return env


def postfix_version(root):
    debs = sorted((PFX_ROOT / "pkg").glob("postfix_*.deb"))
    return debs[-1].name.split("_")[1] if debs else "?"


class PostfixInstance:
    """A private Postfix: its own config_directory, queue_directory, ports."""

    def __init__(self, root, port, sink_port):
        self.root = root
        self.env = postfix_env(root)
        self.dir = Path(tempfile.mkdtemp(prefix="postern-bench-postfix-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.conf = self.dir / "conf"
        self.queue = self.dir / "queue"
        data = self.dir / "data"
        for d in (self.conf, self.queue, data):
            d.mkdir()
        shutil.chown(data, conftest.MAIL_OWNER, conftest.MAIL_OWNER)
        self.log = self.dir / "maillog"
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(data),
            "daemon_directory": str(root / "usr/lib/postfix/sbin"),
            "command_directory": str(root / "usr/sbin"),
            "shlib_directory": str(root / "usr/lib/postfix"),
            "meta_directory": str(root / "etc/postfix"),
            "mail_owner": conftest.MAIL_OWNER,
            "setgid_group": conftest.SETGID_GROUP,
            "myhostname": "bench-postfix.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": f"[127.0.0.1]:{sink_port}",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": "/tmp",
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C POSTLOG_SERVICE "
                                  "POSTLOG_HOSTNAME LD_LIBRARY_PATH",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "100",
        }
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.conf / "master.cf").write_text(
            f"127.0.0.1:{port} inet n - n - - smtpd\n"
            "cleanup   unix n - n - 0 cleanup\n"
            "qmgr      unix n - n 300 1 qmgr\n"
            "rewrite   unix - - n - - trivial-rewrite\n"
            "bounce    unix - - n - 0 bounce\n"
            "defer     unix - - n - 0 bounce\n"
            "trace     unix - - n - 0 bounce\n"
            "verify    unix - - n - 1 verify\n"
            "flush     unix n - n 1000? 0 flush\n"
            "proxymap  unix - - n - - proxymap\n"
            "smtp      unix - - n - - smtp\n"
            "relay     unix - - n - - smtp\n"
            "error     unix - - n - - error\n"
            "retry     unix - - n - - error\n"
            "discard   unix - - n - - discard\n"
            "anvil     unix - - n - 1 anvil\n"
            "scache    unix - - n - 1 scache\n"
            "postlog   unix-dgram n - n - 1 postlogd\n")

    def postfix(self, verb):
        # The postfix command reports only to syslog unless stderr is a
        # terminal: run it under script(1) to see why when it fails.
        cmd = f"{self.root}/usr/sbin/postfix -c {self.conf} {verb}"
        return run(["script", "-qc", cmd, "/dev/null"], env=self.env)

    def start(self):
        r = self.postfix("start")
        if r.returncode != 0:
            return f"postfix start failed: {r.stdout.strip()[-500:]}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.log.exists() and "daemon started" in self.log.read_text(errors="replace"):
                return None
            time.sleep(0.1)
        return "postfix master did not log its start within 20s"

    def stop(self):
        self.postfix("stop")
        # Give master time to take its children down, then remove the tree.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self.queue / "pid/master.pid").exists():
            time.sleep(0.1)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# -- Postern ----------------------------------------------------------------

class PosternInstance:
    def __init__(self, port, sink_port):
        conftest.ensure_mail_user()
        self.dir = Path(tempfile.mkdtemp(prefix="postern-bench-", dir="/tmp"))
        os.chmod(self.dir, 0o755)
        self.inst = conftest.Instance(self.dir)
        self.inst.write_main_cf({
            "myhostname": "bench-postern.example",
            "mydestination": "",
            "mynetworks": "127.0.0.0/8",
            "relayhost": f"[127.0.0.1]:{sink_port}",
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "smtpd_client_connection_count_limit": "0",
            "default_process_limit": "100",
        })
        self.inst.write_master_cf(
            f"127.0.0.1:{port} inet n - n - - smtpd\n"
            "cleanup unix n - n - 0 cleanup\n"
            "qmgr    unix n - n 300 1 qmgr\n"
            "bounce  unix - - n - 0 bounce\n"
            "smtp    unix - - n - - smtp\n"
            "relay   unix - - n - - smtp\n")

    def start(self):
        self.inst.start()
        return None

    def stop(self):
        self.inst.cleanup()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


# -- the load tools ----------------------------------------------------------

class Sink:
    """smtp-sink with its running counters read as they change."""

    def __init__(self, root, port):
        argv = [str(root / "usr/sbin/smtp-sink"), "-c"]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]
        argv += [f"127.0.0.1:{port}", str(SINK_BACKLOG)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=postfix_env(root))
        self.count = 0
        self.changed = time.monotonic()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        buf = b""
        while True:
            data = self.proc.stdout.read1(4096)
            if not data:
                return
            buf = (buf + data)[-4096:]
            found = re.findall(rb"mesg=(\d+)", buf)
            if found:
                n = int(found[-1])
                with self.lock:
                    if n != self.count:
                        self.count = n
                        self.changed = time.monotonic()

    def snapshot(self):
        with self.lock:
            return self.count, self.changed

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def source_run(root, port, clients, size, seconds):
    """smtp-source for `seconds`: (messages completed, sending time, error text)."""
    argv = [str(root / "usr/sbin/smtp-source"), "-c", "-d", "-s", str(clients),
            "-m", str(SOURCE_MESSAGES), "-l", str(size), "-M", "bench-client.example",
            "-f", "sender@bench-client.example", "-t", "rcpt@bench-dest.example",
            f"127.0.0.1:{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=postfix_env(root))
    out = bytearray()
    reader = threading.Thread(target=lambda: out.extend(proc.stdout.read()), daemon=True)
    reader.start()
    t0 = time.monotonic()
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    elapsed = time.monotonic() - t0
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    counts = re.findall(rb"(\d+)", bytes(out))
    err = proc.stderr.read().decode(errors="replace").strip()
    done = int(counts[-1]) if counts else 0
    return done, elapsed, err if proc.returncode not in (0, -signal.SIGTERM) else ""


def measure(root, sink, port, clients, size, seconds, drain):
    """One row: accepted/s, relayed/s, messages relayed, note."""
    base, _ = sink.snapshot()
    t0 = time.monotonic()
    done, sending, err = source_run(root, port, clients, size, seconds)
    deadline = time.monotonic() + drain
    # Drained: everything accepted has arrived, and nothing came for a while.
    while time.monotonic() < deadline:
        n, changed = sink.snapshot()
        if n - base >= done - clients and time.monotonic() - changed >= QUIET_SECONDS:
            break
        time.sleep(0.1)
    n, changed = sink.snapshot()
    relayed = n - base
    note = ""
    # smtp-source counts a message when it has sent the final ".": the
    # transactions that stopping it cut short (one per client at most) were
    # never acknowledged, so the MTA rightly dropped them.
    if relayed < done - clients:
        note = f"{done - relayed} accepted not relayed after {drain:g}s"
    if err:
        note = (note + "; " if note else "") + f"smtp-source: {err[-120:]}"
    return done / sending, relayed / max(1e-9, changed - t0), relayed, note


def warm_up(root, port):
    source_run(root, port, 2, 1024, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 10)),
                    help="sending time per row (default 10)")
    ap.add_argument("--clients", default="1,10,100", help="concurrent clients")
    ap.add_argument("--sizes", default="2048,102400", help="message sizes in bytes")
    ap.add_argument("--drain", type=float, default=60, help="seconds to wait for relaying")
    ap.add_argument("--skip", default="", help="comma list: postern,postfix")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    root, why = postfix_unpack()
    if root is None:
        print(f"bench_relay: skipped: Postfix's smtp-source/smtp-sink unavailable: {why}")
        return 0
    missing = [d for d in ("master", "smtpd", "cleanup", "qmgr", "smtp", "bounce", "postern")
               if not (BUILD / "bin" / d).exists()]
    if missing and "postern" not in skip:
        print(f"bench_relay: Postern skipped: {', '.join(missing)} not built in {BUILD} (make)")
        skip.add("postern")
    print(f"bench_relay: Postern build {BUILD}, Postfix {postfix_version(root)} from {root}, "
          f"{os.cpu_count()} CPUs, {platform.release()}, load average "
          f"{os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    print(f"command: {' '.join([sys.executable] + sys.argv)}")
    print(f"workload: smtp-source -d -s CLIENTS -l SIZE for {args.seconds:g}s per row -> MTA -> "
          f"relayhost [127.0.0.1]:PORT (smtp-sink)\n")

    ports = [conftest.get_free_port() for _ in range(3)]
    sink = Sink(root, ports[0])
    mtas = {}
    notes = []
    try:
        if "postern" not in skip:
            mtas["Postern"] = (PosternInstance(ports[1], ports[0]), ports[1])
        if "postfix" not in skip:
            if os.geteuid() != 0:
                notes.append("Postfix: not run: its master must be started as root")
            else:
                mtas["Postfix"] = (PostfixInstance(root, ports[2], ports[0]), ports[2])
        for name, (mta, port) in list(mtas.items()):
            err = mta.start()
            if err:
                notes.append(f"{name}: not run: {err}")
                mta.stop()
                del mtas[name]
                continue
            warm_up(root, port)
        names = list(mtas)
        head = f"{'size':>6} {'clients':>7}"
        for n in names:
            head += f" | {n + ' acc/s':>14} {n + ' relayed/s':>18}"
        if len(names) == 2:
            head += f" | {'relayed ratio':>13}"
        print(head)
        for size in (int(x) for x in args.sizes.split(",")):
            for clients in (int(x) for x in args.clients.split(",")):
                line = f"{size // 1024:>4}KB {clients:>7}"
                rates = []
                for n in names:
                    mta, port = mtas[n]
                    acc, rel, count, note = measure(root, sink, port, clients, size,
                                                    args.seconds, args.drain)
                    rates.append(rel)
                    line += f" | {acc:>14.0f} {rel:>18.0f}"
                    if note:
                        notes.append(f"{n} {size // 1024}KB x{clients}: {note}")
                if len(rates) == 2:
                    line += f" | {rates[0] / max(rates[1], 1e-9):>13.2f}"
                print(line, flush=True)
    finally:
        for mta, _ in mtas.values():
            mta.stop()
        sink.stop()
    for n in notes:
        print(f"note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
