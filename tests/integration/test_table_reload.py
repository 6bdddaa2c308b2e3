"""A lookup table rebuilt with postmap is used by a running smtpd at once:
no restart, no reload, and never a half-built table."""

import subprocess
import time

from conftest import BUILD
from smtpd_support import HOSTNAME, LOCAL_USER, smtpd_server  # noqa: F401

RCPT = f"{LOCAL_USER}@{HOSTNAME}"


def postmap(inst, *args):
    r = subprocess.run([str(BUILD / "bin" / "postmap"), "-c", str(inst.conf_dir), *args],
                       capture_output=True, text=True, timeout=60, env=inst.env)
    assert r.returncode == 0, r.stderr
    return r


def rcpt_reply(server, rcpt):
    with server.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@elsewhere.example>").startswith("250")
        reply = c.cmd(f"RCPT TO:<{rcpt}>")
        c.cmd("QUIT")
    return reply


def test_rebuilt_hash_table_is_used_without_restart(smtpd_server):
    def main_cf(inst):
        return {"smtpd_recipient_restrictions":
                f"check_recipient_access hash:{inst.conf_dir}/access, permit"}

    # The table must exist before smtpd opens it.
    holder = {}

    def build_first(inst):
        holder["inst"] = inst
        (inst.conf_dir / "access").write_text("nobody@example.org REJECT\n")
        postmap(inst, f"hash:{inst.conf_dir}/access")
        return main_cf(inst)

    server = smtpd_server(main_cf=build_first, real="cleanup")
    inst = server.inst
    assert rcpt_reply(server, RCPT).startswith("250"), server.log()[-2000:]
    master_pid = inst.master_pid()
    service = f"127.0.0.1:{server.port}"
    smtpd_pids = set(inst.service_pids(service))
    assert smtpd_pids

    (inst.conf_dir / "access").write_text(f"{RCPT} REJECT closed for maintenance\n")
    postmap(inst, f"hash:{inst.conf_dir}/access")
    # The table layer checks a file's identity at most once a second.
    deadline = time.monotonic() + 10
    while True:
        reply = rcpt_reply(server, RCPT)
        if reply.startswith("554") or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert reply.startswith("554 5.7.1"), reply
    assert "closed for maintenance" in reply
    # Same processes: nothing was restarted or reloaded.
    assert inst.master_pid() == master_pid
    assert smtpd_pids & set(inst.service_pids(service)), "smtpd was replaced"
    assert "reload -- version" not in inst.log_text()
