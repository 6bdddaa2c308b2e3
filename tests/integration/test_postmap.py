"""postmap: building hash:/btree: tables, queries, deletes, dumps, incremental
updates, atomic rebuilds, and the errors an administrator can run into.

Each test works in its own temporary directory, with MAIL_CONFIG pointing at
an empty configuration directory so that no system main.cf is read.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

SRC = Path(os.environ.get("POSTERN_SRC", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("POSTERN_BUILD", SRC / "build-san"))
POSTMAP = BUILD / "bin" / "postmap"
TIMEOUT = 60
DB_DUMP = shutil.which("db5.3_dump") or shutil.which("db_dump")


@pytest.fixture
def pm(tmp_path):
    """run(args, input=None) -> CompletedProcess, in tmp_path."""
    if not POSTMAP.exists():
        pytest.skip(f"{POSTMAP} not built")
    conf = tmp_path / "conf"
    conf.mkdir()
    env = dict(os.environ, MAIL_CONFIG=str(conf))

    def run(*args, input=None):
        p = subprocess.run([str(POSTMAP), *map(str, args)], input=input, cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert "Sanitizer" not in p.stderr, p.stderr
        return p

    run.dir = tmp_path
    run.conf = conf
    return run


def write(path, text, mode=0o644):
    path.write_text(text)
    path.chmod(mode)
    return path


SOURCE = """\
# virtual aliases
Alice@Example.COM    alice@mail.example.com
bob@example.com      bob@mail.example.com,
    bob@backup.example.com
@catchall.example    postmaster
"""


@pytest.mark.parametrize("kind", ["hash", "btree"])
def test_build_and_query(pm, kind):
    write(pm.dir / "virtual", SOURCE)
    p = pm(f"{kind}:virtual")
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    assert (pm.dir / "virtual.db").exists()

    p = pm("-q", "alice@example.com", f"{kind}:virtual")
    assert (p.returncode, p.stdout) == (0, "alice@mail.example.com\n")
    p = pm("-q", "ALICE@EXAMPLE.COM", f"{kind}:virtual")   # keys are folded
    assert (p.returncode, p.stdout) == (0, "alice@mail.example.com\n")
    p = pm("-q", "bob@example.com", f"{kind}:virtual")
    assert p.stdout == "bob@mail.example.com,    bob@backup.example.com\n"
    p = pm("-q", "nobody@example.com", f"{kind}:virtual")
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "")


def test_default_type_and_config_dir(pm):
    write(pm.dir / "t", "key value\n")
    assert pm("t").returncode == 0                   # default_database_type = hash
    assert pm("-q", "key", "hash:t").stdout == "value\n"
    assert pm("-q", "key", "t").stdout == "value\n"

    cdir = pm.dir / "other-conf"
    cdir.mkdir()
    write(cdir / "main.cf", "default_database_type = btree\n")
    write(pm.dir / "b", "key bvalue\n")
    assert pm("-c", cdir, "b").returncode == 0
    assert pm("-q", "key", "btree:b").stdout == "bvalue\n"
    assert pm("-q", "key", "hash:b").returncode != 0  # it really is a btree file
    p = pm("-c", pm.dir / "no-such-dir", "-q", "key", "hash:t")
    assert p.returncode != 0 and "main.cf" in p.stderr


def test_fold_option(pm):
    write(pm.dir / "t", "MixedCase value\n")
    assert pm("-f", "hash:t").returncode == 0
    assert pm("-f", "-q", "MixedCase", "hash:t").stdout == "value\n"
    assert pm("-f", "-q", "mixedcase", "hash:t").returncode == 1
    assert pm("-q", "MixedCase", "hash:t").returncode == 1  # the query is folded, the key not


def test_query_stdin(pm):
    write(pm.dir / "t", "a 1\nb 2\n")
    write(pm.dir / "u", "c 3\n")
    assert pm("hash:t", "hash:u").returncode == 0
    p = pm("-q", "-", "hash:t", "hash:u", input="a\nmissing\nc\nB\n")
    assert p.returncode == 0
    assert p.stdout.splitlines() == ["a\t1", "c\t3", "B\t2"]
    p = pm("-q", "-", "hash:t", input="x\ny\n")
    assert (p.returncode, p.stdout) == (1, "")


def test_delete(pm):
    write(pm.dir / "t", "a 1\nb 2\nc 3\n")
    assert pm("hash:t").returncode == 0
    assert pm("-d", "a", "hash:t").returncode == 0
    assert pm("-q", "a", "hash:t").returncode == 1
    assert pm("-q", "b", "hash:t").stdout == "2\n"
    assert pm("-d", "a", "hash:t").returncode == 1     # already gone
    p = pm("-d", "-", "hash:t", input="b\nzz\n")
    assert p.returncode == 0
    assert pm("-s", "hash:t").stdout == "c\t3\n"
    assert pm("-d", "-", "hash:t", input="zz\n").returncode == 1
    p = pm("-d", "a", "hash:absent")
    assert p.returncode != 0 and "No such file or directory" in p.stderr
    assert not (pm.dir / "absent.db").exists()


def test_sequence(pm):
    entries = {f"key{i}": f"value {i}" for i in range(50)}
    write(pm.dir / "t", "".join(f"{k} {v}\n" for k, v in entries.items()))
    assert pm("btree:t").returncode == 0
    p = pm("-s", "btree:t")
    assert p.returncode == 0
    got = dict(line.split("\t", 1) for line in p.stdout.splitlines())
    assert got == entries
    p = pm("-s", "texthash:t")                          # texthash keeps source order
    assert p.stdout.splitlines()[0] == "key0\tvalue 0"


def test_incremental(pm):
    write(pm.dir / "t", "a 1\n")
    assert pm("hash:t").returncode == 0
    p = pm("-i", "hash:t", input="b 2\nC 3\n  continued\na dup\n")
    assert p.returncode == 0
    assert "duplicate entry" in p.stderr and "stdin, line 4" in p.stderr
    assert pm("-q", "a", "hash:t").stdout == "1\n"       # first value kept
    assert pm("-q", "b", "hash:t").stdout == "2\n"
    assert pm("-q", "c", "hash:t").stdout == "3  continued\n"
    assert pm("-r", "-i", "hash:t", input="a replaced\n").returncode == 0
    assert pm("-q", "a", "hash:t").stdout == "replaced\n"
    p = pm("-w", "-i", "hash:t", input="a ignored\n")
    assert p.returncode == 0 and p.stderr == ""
    assert pm("-q", "a", "hash:t").stdout == "replaced\n"
    # -i on a table that does not exist yet creates it
    assert pm("-i", "hash:fresh", input="k v\n").returncode == 0
    assert pm("-q", "k", "hash:fresh").stdout == "v\n"


def test_source_warnings(pm):
    write(pm.dir / "t", "lonely\nalias: target\ngood value\ngood other\n\"open quote x\n")
    p = pm("hash:t")
    assert p.returncode == 0
    assert "t, line 1: expected format: key whitespace value" in p.stderr
    assert "is this an alias file?" in p.stderr
    assert 't, line 4: duplicate entry: "good"' in p.stderr
    assert "t, line 5: unbalanced" in p.stderr
    assert pm("-q", "good", "hash:t").stdout == "value\n"
    assert pm("-q", "lonely", "hash:t").returncode == 1


def test_rebuild_is_atomic(pm):
    """Readers running while the table is rebuilt always find a whole table."""
    n = 3000
    for gen in (1, 2):
        write(pm.dir / f"src{gen}", "".join(f"key{i} gen{gen}\n" for i in range(n)))
    shutil.copy(pm.dir / "src1", pm.dir / "t")
    assert pm("hash:t").returncode == 0
    inode = (pm.dir / "t.db").stat().st_ino

    stop = threading.Event()
    errors = []

    def rebuild():
        gen = 1
        while not stop.is_set():
            gen = 3 - gen
            shutil.copy(pm.dir / f"src{gen}", pm.dir / "t")
            p = pm("hash:t")
            if p.returncode != 0:
                errors.append(p.stderr)

    writer = threading.Thread(target=rebuild)
    writer.start()
    try:
        for i in range(15):
            p = pm("-q", "-", "hash:t", input=f"key0\nkey{n - 1}\nkey{i}\n")
            lines = p.stdout.splitlines()
            if p.returncode != 0 or len(lines) != 3:
                errors.append(f"query: rc={p.returncode} out={p.stdout!r} err={p.stderr!r}")
            elif len({line.split("\t")[1] for line in lines}) != 1:
                errors.append(f"mixed generations: {lines}")
    finally:
        stop.set()
        writer.join(TIMEOUT)
    assert errors == []
    assert (pm.dir / "t.db").stat().st_ino != inode     # replaced, not rewritten
    leftovers = [f.name for f in pm.dir.iterdir() if ".tmp" in f.name]
    assert leftovers == []


def test_permissions_follow_source(pm):
    write(pm.dir / "secret", "k v\n", mode=0o640)
    assert pm("hash:secret").returncode == 0
    assert (pm.dir / "secret.db").stat().st_mode & 0o777 == 0o640
    write(pm.dir / "private", "k v\n", mode=0o600)
    assert pm("hash:private").returncode == 0
    assert (pm.dir / "private.db").stat().st_mode & 0o777 == 0o600
    write(pm.dir / "open", "k v\n", mode=0o600)
    assert pm("-p", "hash:open").returncode == 0        # -p: default 0644
    assert (pm.dir / "open.db").stat().st_mode & 0o777 == 0o644


@pytest.mark.skipif(DB_DUMP is None, reason="db5.3_dump not installed")
def test_trailing_nul_like_postfix(pm):
    write(pm.dir / "t", "key value\n")
    assert pm("hash:t").returncode == 0
    dump = subprocess.run([DB_DUMP, "-p", "t.db"], cwd=pm.dir, capture_output=True,
                          text=True, check=True).stdout
    assert " key\\00\n" in dump and " value\\00\n" in dump
    assert pm("-n", "hash:t").returncode == 0
    dump = subprocess.run([DB_DUMP, "-p", "t.db"], cwd=pm.dir, capture_output=True,
                          text=True, check=True).stdout
    assert " key\n" in dump and " value\n" in dump
    assert pm("-q", "key", "hash:t").stdout == "value\n"  # either form is read


def test_other_table_types(pm):
    write(pm.dir / "re", "/^(.+)@example\\.com$/  local:$1\nif /^x/\n/y$/ XY\nendif\n")
    write(pm.dir / "nets", "192.0.2.0/24 REJECT\n2001:db8::/32 OK\n")
    write(pm.dir / "th", "key value\n")
    assert pm("-q", "joe@EXAMPLE.com", "pcre:re").stdout == "local:joe\n"
    assert pm("-q", "xy", "pcre:re").stdout == "XY\n"
    assert pm("-q", "ay", "pcre:re").returncode == 1
    assert pm("-q", "192.0.2.7", "cidr:nets").stdout == "REJECT\n"
    assert pm("-q", "2001:db8::7", "cidr:nets").stdout == "OK\n"
    assert pm("-q", "198.51.100.1", "cidr:nets").returncode == 1
    assert pm("-q", "KEY", "texthash:th").stdout == "value\n"
    assert pm("-q", "b", "inline:{a=1, b=2}").stdout == "2\n"
    assert pm("-q", "anything", "static:{ 550 no }").stdout == "550 no\n"
    p = pm("-q", "x", "inline:{a=1")
    assert p.returncode != 0 and "bad syntax" in p.stderr

    write(pm.dir / "broken", "/ok/ fine\n/bad(/ broken\n")
    p = pm("-q", "ok", "pcre:broken")
    assert p.returncode == 0 and p.stdout == "fine\n"
    assert "broken, line 2:" in p.stderr

    p = pm("pcre:re")                                  # only hash/btree are built
    assert p.returncode != 0 and "read-only" in p.stderr
    p = pm("-s", "pcre:re")
    assert p.returncode != 0


def test_bad_usage(pm):
    for args in ([], ["-Z", "hash:t"], ["-q"], ["-q", "a", "-s", "hash:t"],
                 ["-q", "a", "-d", "b", "hash:t"], ["-s", "-q", "a", "hash:t"]):
        p = pm(*args)
        assert p.returncode == 64, (args, p.stderr)
        assert "usage:" in p.stderr


def test_missing_files(pm):
    p = pm("hash:nosuchfile")
    assert p.returncode != 0
    assert p.stderr.strip() == "postmap: fatal: open nosuchfile: No such file or directory"
    p = pm("-q", "k", "hash:nosuchfile")
    assert p.returncode != 0 and p.returncode != 64
    assert "open database nosuchfile.db: No such file or directory" in p.stderr
    p = pm("-q", "k", "pcre:nosuchfile")
    assert p.returncode != 0 and "open nosuchfile: No such file or directory" in p.stderr
    p = pm("-q", "k", "nosuchtype:x")
    assert p.returncode != 0 and "unsupported dictionary type" in p.stderr
