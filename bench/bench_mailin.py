#!/usr/bin/python3
"""bench_mailin - throughput, latency and memory of the mail-in path.

Starts private instances (master, smtpd, cleanup, qmgr, local delivering to
Maildir) from the optimised build ($POSTERN_BUILD, default ./build) with
the integration harness, and prints:

  disk      write+fsync+rename+fsync-dir sequences per second on the file
            system the queue lives on, from 1 and from 4 writers: the
            ceiling that durable acceptance can reach
  load      messages per second accepted (250 after the end of data) and
            delivered (file in Maildir/new) for 1, 10 and 100 concurrent
            clients sending 2 KB messages over persistent sessions
            (PIPELINING when offered), with the queue's full durability;
            p50/p99 latency from MAIL FROM to the 250 and to the file in
            Maildir/new (seen with inotify, matched by a token per message)
  memory    PSS summed over every process of the instance
            (/proc/PID/smaps_rollup) with 0, 1,000 and 10,000 idle sessions
            that each got the banner and the EHLO reply

It asserts nothing and every phase is bounded in time. See bench/README.md.
"""

import argparse
import asyncio
import ctypes
import os
import platform
import resource
import shutil
import struct
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
import mailin    # noqa: E402  mail-in configuration and Maildir helpers

BUILD = conftest.BUILD
MESSAGE_SIZE = 2048
CONNECT_CONCURRENCY = 256     # handshakes in flight while opening idle sessions
REPLY_TIMEOUT = 60            # seconds for any one SMTP reply
NOFILE_WANTED = 65536


# -- small helpers ---------------------------------------------------------

def pct(values, p):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def pss_kib(pids):
    """PSS of PIDS summed, in KiB (processes that vanished count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass
    return total


def raise_nofile():
    """Raise RLIMIT_NOFILE (inherited by the instance started afterwards)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if conftest.IS_ROOT and hard < NOFILE_WANTED:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_WANTED, NOFILE_WANTED))
            return NOFILE_WANTED
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def fs_type(path):
    try:
        return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


class Bench:
    """One private instance for a benchmark phase."""

    def __init__(self, users, main_extra=None, smtpd_maxproc="-", smtpd_args=""):
        conftest.ensure_mail_user()
        self.root = Path(tempfile.mkdtemp(prefix="postern-bench-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.port = conftest.get_free_port()
        self.inst = conftest.Instance(self.root)
        mailin.prepare_mail_root(self.root)
        self.inst.write_main_cf(mailin.mailin_main_cf(self.root, users, main_extra))
        self.inst.write_master_cf(mailin.mailin_master_cf(self.port, smtpd_maxproc=smtpd_maxproc,
                                                          smtpd_args=smtpd_args))
        try:
            self.inst.start()
        except BaseException:  # the harness fails with pytest's exception
            self.close()
            raise

    def close(self):
        self.inst.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)


# -- disk reference --------------------------------------------------------

def disk_rate(directory, writers, seconds):
    """write+fsync+rename+fsync-dir sequences per second, WRITERS threads."""
    base = Path(tempfile.mkdtemp(prefix="postern-disk-", dir=directory))
    incoming, immediate = base / "incoming", base / "immediate"
    incoming.mkdir()
    immediate.mkdir()
    payload = os.urandom(MESSAGE_SIZE)
    counts = [0] * writers
    end = time.monotonic() + seconds

    def work(k):
        dfd = os.open(immediate, os.O_RDONLY | os.O_DIRECTORY)
        n = 0
        try:
            while time.monotonic() < end:
                tmp = incoming / f"{k}.{n}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.write(fd, payload)
                os.fsync(fd)
                os.close(fd)
                os.rename(tmp, immediate / f"{k}.{n}")
                os.fsync(dfd)
                n += 1
        finally:
            os.close(dfd)
            counts[k] = n

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    shutil.rmtree(base, ignore_errors=True)
    return sum(counts) / elapsed


# -- SMTP client -----------------------------------------------------------

async def read_reply(reader):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise EOFError("connection closed")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), lines


async def open_session(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    code, _ = await read_reply(reader)
    if code != 220:
        raise RuntimeError(f"banner {code}")
    writer.write(b"EHLO bench.e2e.test\r\n")
    code, lines = await read_reply(reader)
    if code != 250:
        raise RuntimeError(f"EHLO {code}")
    pipelining = any(line[4:].strip().upper() == b"PIPELINING" for line in lines)
    return reader, writer, pipelining


def make_message(token, rcpt):
    """A 2 KB message (as sent, dot-stuffing not needed) carrying TOKEN."""
    head = (f"From: <bench@{mailin.SENDER_DOMAIN}>\r\nTo: <{rcpt}>\r\n"
            f"Subject: bench {token}\r\nMessage-ID: <{token}@{mailin.SENDER_DOMAIN}>\r\n"
            f"Date: {mailin.message_date()}\r\nX-Token: {token}\r\n\r\n").encode()
    line = b"The quick brown fox jumps over the lazy dog 0123456789 abcdefghij.\r\n"
    body = (line * (MESSAGE_SIZE // len(line) + 1))[:MESSAGE_SIZE - len(head) - 2] + b"\r\n"
    return head + body + b".\r\n"


class Load:
    """State of one throughput run."""

    def __init__(self, run, end, pipelining=True):
        self.run, self.end, self.pipelining = run, end, pipelining
        self.start = {}        # token -> time MAIL FROM was sent
        self.accepted = {}     # token -> time of the 250
        self.delivered = {}    # token -> time seen in Maildir/new
        self.errors = []


async def load_client(port, load, cid, users):
    try:
        reader, writer, pipelining = await open_session(port)
        pipelining = pipelining and load.pipelining
    except (OSError, EOFError, RuntimeError, asyncio.TimeoutError) as e:
        load.errors.append(f"client {cid}: {e!r}")
        return
    n = 0
    try:
        while time.monotonic() < load.end:
            token = f"{load.run}-{cid:03d}-{n:06d}"
            rcpt = f"{users[(cid + n) % len(users)]}@{mailin.DOMAIN}"
            n += 1
            msg = make_message(token, rcpt)
            load.start[token] = time.monotonic()
            cmds = [f"MAIL FROM:<bench@{mailin.SENDER_DOMAIN}> SIZE={len(msg)}\r\n".encode(),
                    f"RCPT TO:<{rcpt}>\r\n".encode(), b"DATA\r\n"]
            codes = []
            if pipelining:
                writer.write(b"".join(cmds))
                for _ in cmds:
                    codes.append((await read_reply(reader))[0])
            else:
                for c in cmds:
                    writer.write(c)
                    codes.append((await read_reply(reader))[0])
            if codes != [250, 250, 354]:
                load.errors.append(f"{token}: replies {codes}")
                if codes[-1] == 354:
                    writer.write(b".\r\n")
                    await read_reply(reader)
                writer.write(b"RSET\r\n")
                await read_reply(reader)
                continue
            writer.write(msg)
            code, lines = await read_reply(reader)
            if code == 250:
                load.accepted[token] = time.monotonic()
            else:
                load.errors.append(f"{token}: end of data {code} {lines[-1]!r}")
        writer.write(b"QUIT\r\n")
        await read_reply(reader)
    except (OSError, EOFError, asyncio.TimeoutError) as e:
        load.errors.append(f"client {cid}: {e!r}")
    finally:
        writer.close()


# -- Maildir watcher -------------------------------------------------------

IN_CREATE, IN_MOVED_TO = 0x100, 0x80
EVENT = struct.Struct("iIII")


class MaildirWatch:
    """Times files arriving in the users' Maildir/new (inotify; polling when absent)."""

    def __init__(self, root, users, on_file):
        self.dirs = {mailin.maildir_new(root, u) for u in users}
        self.on_file = on_file
        self.fd = -1
        self.wd = {}
        self.known = set()
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            for d in self.dirs:
                wd = libc.inotify_add_watch(self.fd, str(d).encode(), IN_CREATE | IN_MOVED_TO)
                if wd < 0:
                    raise OSError(ctypes.get_errno(), f"inotify_add_watch {d}")
                self.wd[wd] = d
        except (OSError, AttributeError):
            if self.fd >= 0:
                os.close(self.fd)
            self.fd = -1
        for d in self.dirs:
            if d.is_dir():
                self.known.update(d / n for n in os.listdir(d))

    def attach(self, loop):
        if self.fd >= 0:
            loop.add_reader(self.fd, self._events)
            return None
        return loop.create_task(self._poll())

    def detach(self, loop):
        if self.fd >= 0:
            loop.remove_reader(self.fd)
            os.close(self.fd)

    def _arrived(self, path):
        if path in self.known:
            return
        self.known.add(path)
        now = time.monotonic()
        try:
            token = mailin.header_token(path.read_bytes()[:4096])
        except OSError:
            return
        if token:
            self.on_file(token, now)

    def _events(self):
        try:
            data = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return
        off = 0
        while off + EVENT.size <= len(data):
            wd, mask, _, length = EVENT.unpack_from(data, off)
            name = data[off + EVENT.size:off + EVENT.size + length].rstrip(b"\0")
            off += EVENT.size + length
            if wd in self.wd and name:
                self._arrived(self.wd[wd] / name.decode())

    async def _poll(self):
        while True:
            for d in self.dirs:
                for n in os.listdir(d):
                    self._arrived(d / n)
            await asyncio.sleep(0.005)


async def throughput(bench, users, clients, seconds, drain, pipelining):
    load = Load(f"B{clients}x{int(time.time()) % 100000}", 0, pipelining)
    loop = asyncio.get_running_loop()

    def on_file(token, now):
        if token.startswith(load.run) and token not in load.delivered:
            load.delivered[token] = now

    watch = MaildirWatch(bench.root, users, on_file)
    poller = watch.attach(loop)
    load.end = time.monotonic() + seconds
    t0 = time.monotonic()
    await asyncio.gather(*(load_client(bench.port, load, c, users) for c in range(clients)))
    t_acc = time.monotonic()
    deadline = time.monotonic() + drain
    while set(load.accepted) - set(load.delivered) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if poller:
        poller.cancel()
    watch.detach(loop)
    acc = [load.accepted[t] - load.start[t] for t in load.accepted]
    dlv = [load.delivered[t] - load.start[t] for t in load.delivered if t in load.start]
    last_acc = max(load.accepted.values(), default=t_acc)
    last_dlv = max(load.delivered.values(), default=t_acc)
    return {
        "clients": clients,
        "accepted": len(load.accepted),
        "delivered": len(set(load.delivered) & set(load.accepted)),
        "acc_rate": len(load.accepted) / max(1e-9, last_acc - t0),
        "dlv_rate": len(load.delivered) / max(1e-9, last_dlv - t0),
        "acc_p50": pct(acc, 50) * 1000, "acc_p99": pct(acc, 99) * 1000,
        "dlv_p50": pct(dlv, 50) * 1000, "dlv_p99": pct(dlv, 99) * 1000,
        "errors": load.errors,
        "undelivered": len(set(load.accepted) - set(load.delivered)),
    }


async def warm_up(bench, users):
    """One message per user, so that the Maildirs exist before they are watched."""
    reader, writer, _ = await open_session(bench.port)
    for u in users:
        for c in (f"MAIL FROM:<bench@{mailin.SENDER_DOMAIN}>", f"RCPT TO:<{u}@{mailin.DOMAIN}>",
                  "DATA"):
            writer.write(c.encode() + b"\r\n")
            await read_reply(reader)
        writer.write(make_message(f"warm-{u}", f"{u}@{mailin.DOMAIN}"))
        code, lines = await read_reply(reader)
        if code != 250:
            raise RuntimeError(f"warm-up message refused: {lines}")
    writer.write(b"QUIT\r\n")
    writer.close()
    deadline = time.monotonic() + 60
    while not all(mailin.maildir_new(bench.root, u).is_dir() for u in users):
        if time.monotonic() > deadline:
            raise RuntimeError("warm-up mail not delivered in 60s:\n"
                               + mailin.log_excerpt(bench.inst, limit=3000))
        await asyncio.sleep(0.05)


# -- idle sessions ---------------------------------------------------------

async def idle_sessions(port, count, sessions, failures):
    """Open COUNT more sessions that got banner and EHLO reply; keep them open."""
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one():
        async with sem:
            try:
                reader, writer, _ = await open_session(port)
                sessions.append(writer)
            except (OSError, EOFError, RuntimeError, asyncio.TimeoutError) as e:
                failures.append(repr(e))

    await asyncio.gather(*(one() for _ in range(count)))


async def memory(bench, levels):
    rows = []
    sessions, failures = [], []
    await asyncio.sleep(1)
    pids = bench.inst.instance_pids()
    rows.append((0, pss_kib(pids), len(pids), len(bench.inst.service_pids(bench.service)), 0))
    for level in levels:
        t0 = time.monotonic()
        await idle_sessions(bench.port, level - len(sessions) - len(failures), sessions, failures)
        elapsed = time.monotonic() - t0
        await asyncio.sleep(1)
        # The sessions are still open and answered: check a sample once more.
        pids = bench.inst.instance_pids()
        rows.append((level, pss_kib(pids), len(pids),
                     len(bench.inst.service_pids(bench.service)), len(failures), elapsed,
                     len(sessions)))
    for w in sessions:
        w.close()
    return rows, failures


# -- main ------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 10)),
                    help="sending time per concurrency level (default 10)")
    ap.add_argument("--clients", default="1,10,100", help="concurrency levels")
    ap.add_argument("--sessions", default="1000,10000", help="idle session counts")
    ap.add_argument("--drain", type=float, default=120, help="seconds to wait for delivery")
    ap.add_argument("--disk-seconds", type=float, default=3)
    ap.add_argument("--no-pipelining", action="store_true",
                    help="one command per round trip even when PIPELINING is offered")
    ap.add_argument("--skip", default="", help="comma list of phases to skip: disk,load,memory")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    missing = [d for d in ("master", "smtpd", "cleanup", "qmgr", "local")
               if not (BUILD / "bin" / d).exists()]
    if missing:
        print(f"bench_mailin: skipped: {', '.join(missing)} not built in {BUILD} (make)")
        return 0
    nofile = raise_nofile()
    users = mailin.ensure_local_users()
    print(f"bench_mailin: build {BUILD}, {os.cpu_count()} CPUs, {platform.release()}, "
          f"/tmp on {fs_type('/tmp')}, RLIMIT_NOFILE {nofile}, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine skews the figures)")
    print(f"command: {' '.join([sys.executable] + sys.argv)}\n")

    if "disk" not in skip:
        one = disk_rate("/tmp", 1, args.disk_seconds)
        four = disk_rate("/tmp", 4, args.disk_seconds)
        print("disk reference (2 KB write + fsync + rename + fsync dir, /tmp):")
        print(f"  1 writer : {one:8.0f} /s")
        print(f"  4 writers: {four:8.0f} /s\n")

    if "load" not in skip:
        bench = Bench(users)
        try:
            asyncio.run(warm_up(bench, users))
            print(f"load: 2 KB messages, persistent sessions, "
                  f"{'no pipelining' if args.no_pipelining else 'PIPELINING'}, "
                  f"{args.seconds:g}s per level, latency from MAIL FROM")
            print(f"{'clients':>7} {'accepted/s':>10} {'delivered/s':>11} "
                  f"{'250 p50':>8} {'250 p99':>8} {'Maildir p50':>11} {'Maildir p99':>11} "
                  f"{'messages':>8} {'errors':>6}")
            for c in (int(x) for x in args.clients.split(",")):
                r = asyncio.run(throughput(bench, users, c, args.seconds, args.drain,
                                           not args.no_pipelining))
                print(f"{r['clients']:>7} {r['acc_rate']:>10.0f} {r['dlv_rate']:>11.0f} "
                      f"{r['acc_p50']:>6.1f}ms {r['acc_p99']:>6.1f}ms "
                      f"{r['dlv_p50']:>9.1f}ms {r['dlv_p99']:>9.1f}ms "
                      f"{r['accepted']:>8} {len(r['errors']):>6}", flush=True)
                if r["errors"]:
                    print(f"        errors, e.g.: {r['errors'][:3]}")
                if r["undelivered"]:
                    print(f"        {r['undelivered']} accepted messages not in a Maildir "
                          f"after {args.drain:g}s")
        finally:
            bench.close()
        print()

    if "memory" not in skip:
        levels = [int(x) for x in args.sessions.split(",")]
        # Room for every session: no per-client cap and a long idle timeout.
        # Two smtpd set-ups: the defaults (max_use 100: a process accepts
        # 100 sessions, then leaves new ones to a fresh process, so 10,000
        # sessions need maxproc 100), and max_use raised so that each
        # process holds as many sessions as its descriptors allow.
        extra = {
            "smtpd_client_connection_count_limit": "0",
            "smtpd_timeout": "3600s",
        }
        print("memory: PSS summed over the instance's processes, idle sessions after EHLO")
        print(f"{'smtpd set-up':<26} {'sessions':>8} {'PSS MiB':>8} {'KiB/session':>11} "
              f"{'processes':>9} {'smtpd':>5} {'failed':>6} {'open time':>9}")
        for label, smtpd_args in (("maxproc 100, max_use 100", ""),
                                  ("maxproc 100, max_use 1e6", "-o max_use=1000000")):
            bench = Bench(users, extra, smtpd_maxproc="100", smtpd_args=smtpd_args)
            bench.service = f"127.0.0.1:{bench.port}"
            try:
                rows, failures = asyncio.run(memory(bench, levels))
            finally:
                bench.close()
            base = rows[0][1]
            for row in rows:
                level, pss, procs, smtpds, failed = row[:5]
                per = (pss - base) / level if level else 0
                extra_col = f"{row[5]:8.1f}s" if len(row) > 5 else ""
                print(f"{label:<26} {level:>8} {pss / 1024:>8.1f} {per:>11.1f} {procs:>9} "
                      f"{smtpds:>5} {failed:>6} {extra_col:>9}", flush=True)
            if failures:
                print(f"  {len(failures)} sessions got no banner/EHLO reply, e.g. {failures[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
