"""test_postconf - the real postconf binary against temporary configuration
directories: listing defaults and settings, lookups, expansion, editing
main.cf in place, master.cf display, and its errors and exit codes."""

import os
import re
import stat
import subprocess

import pytest

BUILD = os.environ.get("POSTERN_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
SRC = os.environ.get("POSTERN_SRC", os.path.join(os.path.dirname(__file__), "../.."))
POSTCONF = os.path.join(BUILD, "bin", "postconf")

MAIN_CF = """\
# Postern main.cf for tests
myhostname = mail.example.com

# destinations, over several lines
mydestination = $myhostname,
    localhost.$mydomain,
# a comment between continuation lines
    localhost
relay_domains = example.net
my_class = reject
smtpd_restriction_classes = my_class
typo_parameter = 1
"""

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command + args
smtp      inet  n       -       n       -       -       smtpd
submission inet n       -       n       -       -       smtpd
  -o syslog_name=postern/submission
  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }
127.0.0.1:2525 inet n - n - 10 smtpd -v
pickup    unix  n       -       n       60      1       pickup
qmgr      unix  n       -       n       300?    1       qmgr
cleanup   unix  n       -       n       -       0       cleanup
"""


def run(*args, env=None, check_rc=None):
    """Run postconf; return (rc, stdout, stderr)."""
    full_env = dict(os.environ)
    full_env.pop("MAIL_CONFIG", None)
    if env:
        full_env.update(env)
    proc = subprocess.run([POSTCONF, *args], capture_output=True, text=True, env=full_env,
                          timeout=60)
    if check_rc is not None:
        assert proc.returncode == check_rc, (proc.returncode, proc.stdout, proc.stderr)
    return proc.returncode, proc.stdout, proc.stderr


def ok(*args, env=None):
    rc, out, err = run(*args, env=env, check_rc=0)
    return out


@pytest.fixture
def confdir(tmp_path):
    (tmp_path / "main.cf").write_text(MAIN_CF)
    (tmp_path / "master.cf").write_text(MASTER_CF)
    return tmp_path


def table_names():
    """Every parameter name in the table, read from the source."""
    text = open(os.path.join(SRC, "lib/mail/mail_params.c")).read()
    return set(re.findall(r'^\s+P_[A-Z]+\("([^"]+)"', text, re.M))


def parse_lines(out):
    result = {}
    for line in out.splitlines():
        name, sep, value = line.partition(" =")
        assert sep, line
        result[name] = value[1:] if value.startswith(" ") else value
    return result


def test_binary_exists():
    assert os.access(POSTCONF, os.X_OK), f"{POSTCONF} is not built"


def test_defaults_list_every_parameter(confdir):
    out = ok("-c", str(confdir), "-d")
    names = [line.split(" =")[0] for line in out.splitlines()]
    assert names == sorted(names)
    assert set(names) == table_names()
    values = parse_lines(out)
    assert values["queue_directory"] == "/var/spool/postern"
    assert values["mail_owner"] == "postern"
    assert values["relay_domains"] == ""
    assert values["smtpd_banner"] == "$myhostname ESMTP $mail_name"
    assert values["maximal_queue_lifetime"] == "5d"
    assert "." in values["myhostname"]
    assert "127.0.0.0/8" in values["mynetworks"]
    # -d ignores main.cf entirely.
    assert values["myhostname"] != "mail.example.com"


def test_defaults_work_without_main_cf(tmp_path):
    out = ok("-c", str(tmp_path), "-d", "mail_name")
    assert out == "mail_name = Postern\n"


def test_all_current_values(confdir):
    rc, out, err = run("-c", str(confdir), check_rc=0)
    values = parse_lines(out)
    assert table_names() <= set(values)
    assert values["myhostname"] == "mail.example.com"
    assert values["my_class"] == "reject"
    names = [line.split(" =")[0] for line in out.splitlines()]
    assert names == sorted(names)
    # A name nothing reads or refers to is probably a typo: warned about.
    assert "unused parameter: typo_parameter=1" in err
    assert "my_class" not in err


def test_nondefault(confdir):
    out = ok("-c", str(confdir), "-n")
    assert out.splitlines() == [
        f"config_directory = {confdir}",
        "my_class = reject",
        "mydestination = $myhostname, localhost.$mydomain, localhost",
        "myhostname = mail.example.com",
        "relay_domains = example.net",
        "smtpd_restriction_classes = my_class",
        "typo_parameter = 1",
    ]
    assert ok("-c", str(confdir), "-n", "myhostname", "myorigin") == \
        "myhostname = mail.example.com\n"


def test_named_lookup_and_unknown(confdir):
    rc, out, err = run("-c", str(confdir), "myorigin", "no_such_param", "relay_domains")
    assert rc == 0  # as Postfix: a warning, not an error
    assert out == "myorigin = $myhostname\nrelay_domains = example.net\n"
    assert "postconf: warning: no_such_param: unknown parameter" in err
    rc, out, err = run("-c", str(confdir), "-d", "no_such_param")
    assert rc == 0 and out == ""
    assert "no_such_param: unknown parameter" in err


def test_values_only_names_only_and_expand(confdir):
    assert ok("-c", str(confdir), "-h", "myorigin") == "$myhostname\n"
    assert ok("-c", str(confdir), "-H", "myorigin") == "myorigin\n"
    assert ok("-c", str(confdir), "-x", "mydestination") == \
        "mydestination = mail.example.com, localhost.example.com, localhost\n"
    assert ok("-c", str(confdir), "-xh", "smtpd_banner") == "mail.example.com ESMTP Postern\n"
    # RAW parameters are not expanded.
    assert "$home/.forward" in ok("-c", str(confdir), "-x", "forward_path")
    # -o overrides for this command only.
    assert ok("-c", str(confdir), "-o", "myhostname=other.example", "-xh", "myorigin") == \
        "other.example\n"


def test_fold(confdir):
    out = ok("-c", str(confdir), "-f", "-d", "parent_domain_matches_subdomains",
             "smtpd_relay_restrictions")
    lines = out.splitlines()
    assert lines[0] == "parent_domain_matches_subdomains ="
    assert lines[1].startswith("    debug_peer_list,")
    assert all(len(line) <= 80 for line in lines[2:])


def test_mail_config_environment(confdir):
    out = ok("-h", "myhostname", env={"MAIL_CONFIG": str(confdir)})
    assert out == "mail.example.com\n"


def test_edit_replaces_and_appends(confdir):
    path = confdir / "main.cf"
    os.chmod(path, 0o640)
    ok("-c", str(confdir), "-e", "mydestination = new.example, $myhostname",
       "mynetworks=10.0.0.0/8", "myhostname = mx.example.com")
    text = path.read_text()
    assert text == MAIN_CF.replace(
        "myhostname = mail.example.com", "myhostname = mx.example.com").replace(
        "mydestination = $myhostname,\n    localhost.$mydomain,\n"
        "# a comment between continuation lines\n    localhost\n",
        "mydestination = new.example, $myhostname\n"
        "# a comment between continuation lines\n") + "mynetworks = 10.0.0.0/8\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(os.listdir(confdir)) == ["main.cf", "master.cf"]  # no temporary left
    assert ok("-c", str(confdir), "-h", "mydestination") == "new.example, $myhostname\n"

    # Without -e, name=value arguments edit too; an empty value is allowed.
    ok("-c", str(confdir), "relay_domains=", "home_mailbox=Maildir/")
    values = parse_lines(ok("-c", str(confdir), "-n"))
    assert values["relay_domains"] == ""
    assert values["home_mailbox"] == "Maildir/"
    assert "relay_domains =\n" in path.read_text()


def test_edit_duplicates_and_missing_newline(tmp_path):
    path = tmp_path / "main.cf"
    path.write_text("myorigin = a\nmyhostname = b\nmyorigin = c\n  continued\nlast = x")
    ok("-c", str(tmp_path), "-e", "myorigin=z", "new_one=1")
    assert path.read_text() == "myorigin = z\nmyhostname = b\nlast = x\nnew_one = 1\n"


def test_remove_and_comment(confdir):
    path = confdir / "main.cf"
    ok("-c", str(confdir), "-X", "mydestination", "not_present")
    text = path.read_text()
    assert "mydestination" not in text
    assert "    localhost\n" not in text
    assert "# a comment between continuation lines\n" in text
    assert "relay_domains = example.net\n" in text
    ok("-c", str(confdir), "-#", "relay_domains")
    assert "#relay_domains = example.net\n" in path.read_text()
    assert ok("-c", str(confdir), "-h", "relay_domains") == "\n"


def test_edit_errors(confdir):
    before = (confdir / "main.cf").read_text()
    for args, message in [
        (["-e", "myorigin"], "missing '=' after parameter name"),
        (["-e", "a b=c"], "bad parameter name"),
        (["-e", "=c"], "missing parameter name"),
        (["-e", "x=a\nb=c"], "line break"),
        (["-X", "a=b"], "-X takes parameter names"),
        (["myorigin=q", "mydomain"], "missing '='"),
        (["-e", "-X", "a"], "specify one of -e -X -#"),
        (["-e"], "requires at least one parameter"),
        (["-M", "-e", "smtp/inet=x"], "not supported"),
    ]:
        rc, out, err = run("-c", str(confdir), *args)
        assert rc == 1, args
        assert message in err, (args, err)
    assert (confdir / "main.cf").read_text() == before


def test_edit_missing_main_cf(tmp_path):
    rc, out, err = run("-c", str(tmp_path), "-e", "myorigin=x")
    assert rc == 1
    assert f"open {tmp_path}/main.cf: No such file or directory" in err
    assert not (tmp_path / "main.cf").exists()


def test_master_cf(confdir):
    out = ok("-c", str(confdir), "-M")
    assert out.splitlines() == [
        "smtp       inet  n       -       n       -       -       smtpd",
        "submission inet  n       -       n       -       -       smtpd -o "
        "syslog_name=postern/submission -o "
        "{smtpd_client_restrictions=permit_sasl_authenticated, reject}",
        "127.0.0.1:2525 inet n    -       n       -       10      smtpd -v",
        "pickup     unix  n       -       n       60      1       pickup",
        "qmgr       unix  n       -       n       300?    1       qmgr",
        "cleanup    unix  n       -       n       -       0       cleanup",
    ]
    assert ok("-c", str(confdir), "-M", "pickup/unix") == \
        "pickup     unix  n       -       n       60      1       pickup\n"
    rc, out, err = run("-c", str(confdir), "-M", "nothere/unix")
    assert rc == 0 and out == ""
    assert 'unmatched request: "nothere/unix"' in err
    folded = ok("-c", str(confdir), "-Mf", "submission/inet").splitlines()
    assert folded[1:] == [
        "    -o syslog_name=postern/submission",
        "    -o {smtpd_client_restrictions=permit_sasl_authenticated, reject}",
    ]
    assert ok("-c", str(confdir), "-F", "qmgr/unix/wakeup") == "qmgr/unix/wakeup = 300?\n"
    assert ok("-c", str(confdir), "-P", "submission/inet/smtpd_client_restrictions") == \
        "submission/inet/smtpd_client_restrictions = permit_sasl_authenticated, reject\n"


def test_master_cf_errors(confdir):
    (confdir / "master.cf").write_text(MASTER_CF + "broken unix n - n -\n")
    rc, out, err = run("-c", str(confdir), "-M")
    assert rc == 1
    assert f"{confdir}/master.cf, line 10: expected 8 fields or more, found 6" in err
    (confdir / "master.cf").unlink()
    rc, out, err = run("-c", str(confdir), "-M")
    assert rc == 1 and "master.cf: No such file or directory" in err


def test_bad_flags(confdir):
    rc, out, err = run("-c", str(confdir), "-Z")
    assert rc == 1  # Postfix's postconf exits 1 on usage errors
    assert "usage: postconf" in err
    rc, out, err = run("-c", str(confdir), "-d", "-n")
    assert rc == 1 and "specify one of -d -n" in err
    rc, out, err = run("-c", str(confdir), "-M", "-F")
    assert rc == 1 and "specify one of -M -F -P" in err


def test_missing_config_dir(tmp_path):
    missing = tmp_path / "nonexistent"
    rc, out, err = run("-c", str(missing))
    assert rc == 1
    assert out == ""
    assert f"postconf: fatal: open {missing}/main.cf: No such file or directory" in err


def test_bad_main_cf(tmp_path):
    (tmp_path / "main.cf").write_text("myhostname = a\n\nthis line is wrong\n")
    rc, out, err = run("-c", str(tmp_path), "-n")
    assert rc == 1
    assert f"{tmp_path}/main.cf, line 3: missing '=' after parameter name" in err
    (tmp_path / "main.cf").write_text("myhostname = $mydomain\nmydomain = $myhostname\n")
    rc, out, err = run("-c", str(tmp_path), "-x", "myhostname")
    assert rc == 1
    assert "parameter loop" in err
    rc, out, err = run("-c", str(tmp_path), "-n")  # unexpanded output is fine
    assert rc == 0
