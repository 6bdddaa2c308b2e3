"""master and postern: start, status, restart, throttle, reload, stop, privileges."""

import os
import pwd
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, IS_ROOT, MAIL_OWNER, have_ipv6, pid_alive, proc_status


def echo_line(inst, name, kind="", unpriv="-", chroot="n", wakeup="-", maxproc="-",
              type_="inet", private="n"):
    """One master.cf line running the echosvc helper."""
    return (f"{name} {type_} {private} {unpriv} {chroot} {wakeup} {maxproc} "
            f"{inst.helper('echosvc')} {kind}\n")


def greet_pid(client):
    m = re.match(r"220 echosvc pid=(\d+)", client.recv())
    assert m, "no greeting"
    return int(m.group(1))


def test_private_instance_status(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - "
                            f"{BUILD}/tests/helpers/echosvc\n")
    r = inst.postern("status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"postfix/postern-script: the Postern mail system is running: PID: "
                     f"{inst.master_pid()}$", r.stderr, re.M), r.stderr
    with inst.connect(port) as c:
        greet_pid(c)
        assert c.ask("hello") == "hello"
    if not IS_ROOT:
        assert inst.count_log(r"running as a private instance as user ") == 1


def test_status_when_stopped_and_bad_usage(postern_instance):
    inst = postern_instance("", start=False)
    r = inst.postern("status")
    assert r.returncode == 1
    assert "the Postern mail system is not running" in r.stderr
    r = inst.postern("frobnicate")
    assert r.returncode == 64 and "usage:" in r.stderr
    r = inst.command([str(BUILD / "bin" / "postern")])
    assert r.returncode == 64


def test_kill9_child_is_replaced(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n")
    with inst.connect(port) as c:
        first = greet_pid(c)
    mark = inst.log_mark()
    os.kill(first, 9)
    inst.wait_for_log(rf"warning: process \S+echosvc pid {first} killed by signal 9", since=mark)
    with inst.connect(port) as c:
        second = greet_pid(c)
        assert c.ask("pid") == str(second)
    assert second != first and pid_alive(second)
    # A process that served clients before dying is not a bad start.
    assert inst.count_log(r"bad command startup", since=mark) == 0


def test_failing_service_is_throttled(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - /bin/false\n",
                            main_cf={"service_throttle_time": "2s"})
    # A client waiting in the backlog is the demand that keeps restarting it.
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        mark = inst.log_mark()
        inst.wait_for_log(r"warning: /bin/false: bad command startup -- throttling")
        time.sleep(5)
        starts = inst.count_log(r"warning: process /bin/false pid \d+ exit status 1", since=mark)
    finally:
        sock.close()
    assert 1 <= starts <= 6, f"{starts} starts in 5 seconds"


def test_sighup_picks_up_changed_parameter(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - "
                            f"{BUILD}/tests/helpers/echosvc\n", main_cf={"max_use": "50"})
    old = inst.connect(port)
    old_pid = greet_pid(old)
    assert old.ask("param max_use") == "max_use = 50"

    inst.write_main_cf({"max_use": "77"})
    mark = inst.log_mark()
    inst.reload()
    inst.wait_for_log(r"reload -- version", since=mark)

    def fresh_value():
        with inst.connect(port) as c:
            greet_pid(c)
            return c.ask("param max_use")
    inst.wait_until(lambda: fresh_value() == "max_use = 77", what="new max_use")
    # The session opened before the reload finishes in its old process ...
    assert old.ask("pid") == str(old_pid)
    assert old.ask("param max_use") == "max_use = 50"
    assert old.ask("quit") == "221 bye"
    old.close()
    # ... which then exits.
    inst.wait_until(lambda: not pid_alive(old_pid), what="old process to exit")


def test_sigterm_leaves_no_process(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(
        f"127.0.0.1:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n"
        f"tick unix - - n 1 1 {BUILD}/tests/helpers/echosvc trigger\n")
    clients = [inst.connect(port) for _ in range(2)]
    for c in clients:
        greet_pid(c)
    inst.wait_until(lambda: inst.service_pids("tick"), what="the trigger service")
    assert len(inst.instance_pids()) >= 3
    master = inst.master_pid()
    t0 = time.monotonic()
    r = inst.stop()
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert "stopping the Postern mail system" in r.stderr
    # Children that do not ignore SIGTERM go at once, not after the kill timeout.
    assert elapsed < 4, f"stop took {elapsed:.1f}s"
    assert inst.instance_pids() == []
    assert not pid_alive(master)
    assert not (inst.queue_dir / "pid" / "master.pid").exists()
    inst.wait_for_log(r"terminating on signal 15")
    for c in clients:
        c.close()


def test_bad_master_cf_refuses_to_start(postern_instance):
    inst = postern_instance("smtp bogus n - n - - smtpd\n", start=False)
    r = inst.postern("start")
    assert r.returncode != 0
    assert re.search(r"master\.cf, line 1: .*bogus", r.stderr), r.stderr
    assert inst.postern("status").returncode == 1
    # master itself says the same when started directly.
    r = inst.command([str(BUILD / "bin" / "master"), "-c", str(inst.conf_dir), "-f"])
    assert r.returncode == 1
    assert re.search(r"fatal: .*master\.cf, line 1: .*bogus", r.stderr), r.stderr
    assert inst.master_pid() is None


def test_second_master_refuses(postern_instance):
    inst = postern_instance("")
    r = inst.command([str(BUILD / "bin" / "master"), "-c", str(inst.conf_dir), "-f"])
    assert r.returncode == 1
    assert "already running" in r.stderr, r.stderr
    r = inst.postern("start")
    assert r.returncode == 1
    assert f"already running: PID: {inst.master_pid()}" in r.stderr
    assert inst.postern("status").returncode == 0


def test_check_creates_and_fixes(postern_instance):
    inst = postern_instance("", start=False)
    r = inst.postern("check")
    assert r.returncode == 0, r.stderr
    assert "created directory" in r.stderr
    hold = inst.queue_dir / "hold"
    assert stat.S_IMODE(hold.stat().st_mode) == 0o700
    assert stat.S_IMODE((inst.queue_dir / "maildrop").stat().st_mode) == 0o1730
    assert stat.S_IMODE((inst.queue_dir / "public").stat().st_mode) == 0o710
    os.chmod(hold, 0o755)
    r = inst.postern("check")
    assert r.returncode == 0, r.stderr
    assert f"fixed mode of {hold}: 0755 -> 0700" in r.stderr
    assert stat.S_IMODE(hold.stat().st_mode) == 0o700
    r = inst.postern("check")
    assert r.returncode == 0 and "fixed" not in r.stderr and "created" not in r.stderr
    if IS_ROOT:
        os.chown(hold, 0, 0)
        r = inst.postern("check")
        assert r.returncode == 0 and f"fixed owner of {hold}" in r.stderr
        assert hold.stat().st_uid == pwd.getpwnam(MAIL_OWNER).pw_uid


@pytest.mark.skipif(not have_ipv6(), reason="no IPv6 on the loopback interface")
def test_ipv6_listener(postern_instance, free_port):
    port = free_port(socket.AF_INET6, "::1")
    inst = postern_instance(f"[::1]:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n")
    with inst.connect(port, socket.AF_INET6) as c:
        greet_pid(c)
        assert c.ask("over six") == "over six"


def test_wakeup_reaches_unix_service(postern_instance):
    inst = postern_instance(f"tick unix - - n 1 1 {BUILD}/tests/helpers/echosvc trigger\n")
    sock = inst.queue_dir / "private" / "tick"
    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    inst.wait_for_log(r"postfix/echosvc\[\d+\]: tick: trigger: 1 bytes: W")
    inst.wait_until(lambda: inst.count_log(r"tick: trigger: 1 bytes: W") >= 2, timeout=5,
                    what="a second wakeup")
    # maxproc 1: one process serves every wakeup.
    assert len(inst.service_pids("tick")) == 1


def test_maxproc_limits_processes(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - 2 "
                            f"{BUILD}/tests/helpers/echosvc single\n")
    service = f"127.0.0.1:{port}"
    a, b = inst.connect(port), inst.connect(port)
    pa, pb = greet_pid(a), greet_pid(b)
    assert pa != pb
    c = inst.connect(port, timeout=1.5)
    with pytest.raises(socket.timeout):
        c.recv()        # waits in the backlog: no third process
    assert len(inst.service_pids(service)) == 2
    inst.wait_for_log(r'service "127\.0\.0\.1:\d+" \(inet\) has reached its process limit "2"')
    a.ask("quit")
    a.close()
    c.sock.settimeout(10)
    # The freed process takes the waiting client.
    assert greet_pid(c) == pa
    assert c.ask("still here") == "still here"
    assert len(inst.service_pids(service)) <= 2
    b.close()
    c.close()


def test_sighup_removes_and_adds_services(postern_instance, free_port):
    pa, pb, pc = free_port(), free_port(), free_port()
    echo = f"{BUILD}/tests/helpers/echosvc"
    inst = postern_instance(f"127.0.0.1:{pa} inet n - n - - {echo}\n"
                            f"127.0.0.1:{pb} inet n - n - - {echo}\n")
    with inst.connect(pa) as c:
        a_pid = greet_pid(c)
    with pytest.raises(OSError):
        inst.connect(pc).close()

    inst.write_master_cf(f"127.0.0.1:{pb} inet n - n - - {echo}\n"
                         f"127.0.0.1:{pc} inet n - n - - {echo}\n")
    mark = inst.log_mark()
    inst.reload()
    inst.wait_for_log(r"reload -- version", since=mark)
    inst.wait_until(lambda: not pid_alive(a_pid), what="the removed service's process to exit")

    def refused():
        try:
            inst.connect(pa).close()
            return False
        except OSError:
            return True
    inst.wait_until(refused, what="the removed listener to close")
    for port in (pb, pc):
        with inst.connect(port) as c:
            greet_pid(c)
            assert c.ask("ok") == "ok"


def test_reload_with_broken_master_cf_keeps_running(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n")
    inst.write_master_cf("broken line\n")
    mark = inst.log_mark()
    inst.reload()
    inst.wait_for_log(r"reload failed: .*master\.cf.* -- keeping the running configuration",
                      since=mark)
    with inst.connect(port) as c:
        greet_pid(c)


@pytest.mark.skipif(not IS_ROOT, reason="needs root: creates a user and runs an instance as it")
def test_private_instance_runs_as_invoking_user(postern_instance, free_port):
    port = free_port()
    inst = postern_instance("", start=False, user=MAIL_OWNER)
    inst.write_master_cf(f"127.0.0.1:{port} inet n - n - - {inst.helper('echosvc')}\n")
    inst.start()
    uid = pwd.getpwnam(MAIL_OWNER).pw_uid
    inst.wait_for_log(rf"running as a private instance as user {MAIL_OWNER} ")
    assert inst.count_log(r"running as a private instance") == 1
    with inst.connect(port) as c:
        pid = greet_pid(c)
        st = proc_status(pid)
        assert st["Uid"].split() == [str(uid)] * 4
    assert proc_status(inst.master_pid())["Uid"].split() == [str(uid)] * 4
    assert inst.postern("status").returncode == 0
    assert inst.stop().returncode == 0
    assert inst.instance_pids() == []


@pytest.mark.skipif(not IS_ROOT, reason="needs root: privilege drop and chroot")
def test_unprivileged_service_drops_everything(postern_instance, free_port):
    p_chroot, p_plain, p_root = free_port(), free_port(), free_port()
    echo = f"{BUILD}/tests/helpers/echosvc"
    inst = postern_instance(f"127.0.0.1:{p_chroot} inet n y y - - {echo}\n"
                            f"127.0.0.1:{p_plain} inet n y n - - {echo}\n"
                            f"127.0.0.1:{p_root} inet n n n - - {echo}\n")
    pw = pwd.getpwnam(MAIL_OWNER)
    for port, root in ((p_chroot, str(inst.queue_dir)), (p_plain, "/")):
        with inst.connect(port) as c:
            pid = greet_pid(c)
            st = proc_status(pid)
            assert st["Uid"].split() == [str(pw.pw_uid)] * 4
            assert st["Gid"].split() == [str(pw.pw_gid)] * 4
            assert st["Groups"].split() in ([], [str(pw.pw_gid)])
            for cap in ("CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"):
                assert int(st[cap], 16) == 0, f"{cap} = {st[cap]}"
            assert st["NoNewPrivs"] == "1"
            assert os.readlink(f"/proc/{pid}/root") == root
            assert c.ask("id").startswith(f"uid={pw.pw_uid} euid={pw.pw_uid} gid={pw.pw_gid}")
    # unpriv = n is the only way a service keeps root.
    with inst.connect(p_root) as c:
        pid = greet_pid(c)
        assert proc_status(pid)["Uid"].split()[1] == "0"


def test_wakeup_reaches_fifo_service(postern_instance):
    inst = postern_instance(f"tickf fifo - - n 1 1 {BUILD}/tests/helpers/echosvc trigger\n")
    fifo = inst.queue_dir / "private" / "tickf"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    inst.wait_until(lambda: inst.count_log(r"tickf: trigger: \d+ bytes: W+") >= 2, timeout=5,
                    what="two wakeups through the fifo")


def test_override_max_idle_ends_idle_process(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n"
                            "  -o max_idle=1s\n")
    with inst.connect(port) as c:
        pid = greet_pid(c)
        assert c.ask("param max_idle") == "max_idle = 1s"
        assert c.ask("quit") == "221 bye"
    inst.wait_until(lambda: not pid_alive(pid), timeout=5, what="the idle process to exit")
    with inst.connect(port) as c:
        assert greet_pid(c) != pid


def test_max_use_retires_process(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - "
                            f"{BUILD}/tests/helpers/echosvc -o max_use=2 single\n")
    pids = []
    for _ in range(3):
        with inst.connect(port) as c:
            pids.append(greet_pid(c))
            c.ask("quit")
    assert pids[0] == pids[1] and pids[2] != pids[0]
    inst.wait_until(lambda: not pid_alive(pids[0]), timeout=5, what="the used-up process")


def test_foreground_master(postern_instance, free_port):
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - {BUILD}/tests/helpers/echosvc\n",
                            start=False)
    assert inst.postern("check").returncode == 0
    proc = subprocess.Popen([str(BUILD / "bin" / "master"), "-c", str(inst.conf_dir), "-f"],
                            env=inst.env, cwd=inst.root, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        inst.wait_for_log(r"daemon started -- version")
        assert inst.master_pid() == proc.pid
        r = inst.postern("status")
        assert r.returncode == 0 and f"PID: {proc.pid}" in r.stderr
        with inst.connect(port) as c:
            child = greet_pid(c)
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert not pid_alive(child)
        assert "daemon started" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _switches(pid):
    """Context switches of a live process so far (voluntary + involuntary)."""
    st = proc_status(pid)
    return int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])


def test_single_service_wakes_one_idle_process(postern_instance, free_port):
    """A new client wakes one idle process of a single-client service, not
    every one of them (EPOLLEXCLUSIVE in the skeleton's private wait)."""
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - 10 "
                            f"{BUILD}/tests/helpers/echosvc single\n")
    service = f"127.0.0.1:{port}"
    # Five clients at once: five processes, then all of them idle.
    clients = [inst.connect(port) for _ in range(5)]
    pids = {greet_pid(c) for c in clients}
    assert len(pids) == 5
    for c in clients:
        assert c.ask("quit") == "221 bye"
        c.close()
    time.sleep(0.5)
    assert set(inst.service_pids(service)) == pids
    before = {pid: _switches(pid) for pid in pids}
    served = set()
    for i in range(30):
        with inst.connect(port) as c:
            served.add(greet_pid(c))
            assert c.ask(f"hello {i}") == f"hello {i}"
            c.ask("quit")
    time.sleep(0.3)
    idle = pids - served
    assert idle, "every process served a client: nothing to compare"
    woken = sum(_switches(pid) - before[pid] for pid in idle)
    # With a shared wait each idle process would wake for every one of the 30
    # connections; an exclusive wait leaves them asleep.
    assert woken <= 2 * len(idle), f"idle processes woke {woken} times for 30 clients"


def test_single_service_sees_reload_at_once(postern_instance, free_port):
    """An idle single-client process notices the closed status pipe while it
    waits for clients, and exits without serving anyone else."""
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - "
                            f"{BUILD}/tests/helpers/echosvc single\n")
    with inst.connect(port) as c:
        old = greet_pid(c)
        c.ask("quit")
    mark = inst.log_mark()
    inst.reload()
    inst.wait_for_log(r"reload -- version", since=mark)
    inst.wait_until(lambda: not pid_alive(old), timeout=3, what="the old process to exit")
    with inst.connect(port) as c:
        assert greet_pid(c) != old


def test_single_service_idle_timer(postern_instance, free_port):
    """max_idle still ends a single-client process that waits in the private set."""
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - "
                            f"{BUILD}/tests/helpers/echosvc -o max_idle=1s single\n")
    with inst.connect(port) as c:
        pid = greet_pid(c)
        c.ask("quit")
    inst.wait_until(lambda: not pid_alive(pid), timeout=5, what="the idle process to exit")


def _trigger(path, data, close=True):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    if data:
        s.sendall(data)
    if close:
        s.close()
    return s


def test_trigger_service_takes_a_burst(postern_instance):
    """Many trigger clients at once are all served, and a client that
    connects and stalls holds up neither the others nor the process."""
    inst = postern_instance(f"burst unix - - n - 1 {BUILD}/tests/helpers/echosvc trigger\n")
    path = inst.queue_dir / "private" / "burst"
    stalled = _trigger(path, b"", close=False)
    slow = _trigger(path, b"Sslow", close=False)
    # Fewer than max_use (100) requests, so the process stays for the count.
    for i in range(80):
        _trigger(path, f"A{i:03d}\0".encode())
    # The slow client finishes after the others (within the 1 s every
    # request has) and is served whole.
    slow.sendall(b"!\0")
    slow.close()
    inst.wait_until(lambda: inst.count_log(r"burst: trigger: 5 bytes: A\d\d\d\?") >= 80,
                    timeout=10, what="80 triggers")
    inst.wait_for_log(r"burst: trigger: 7 bytes: Sslow!\?")
    # The stalled one is dropped after MAIL_SERVER_TRIGGER_WAIT_MS.
    inst.wait_for_log(r"trigger request not complete within \d+ ms: dropped")
    stalled.close()
    assert len(inst.service_pids("burst")) == 1
