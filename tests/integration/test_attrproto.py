"""Self-test of tests/integration/attrproto.py against docs/ipc.md (no instance needed)."""

import pytest

from attrproto import (TYPE_BIN, TYPE_INT, TYPE_STR, TYPE_UINT, AttrError, Int, UInt, decode,
                       encode)

# The example of docs/ipc.md ("Wire format"), byte for byte.
DOC_EXAMPLE = bytes.fromhex(
    "01 01 61 00 00 00 02 78 79"
    "02 01 6e 00 00 00 08 ff ff ff ff ff ff ff fe"
    "03 01 75 00 00 00 08 00 00 00 00 00 00 01 02"
    "04 01 62 00 00 00 01 00"
    "00")


def test_doc_example_encodes_exactly():
    assert encode([("a", "xy"), ("n", -2), ("u", 258), ("b", b"\0")]) == DOC_EXAMPLE
    assert encode([("a", "xy"), ("n", Int(-2)), ("u", UInt(258)), ("b", b"\0")]) == DOC_EXAMPLE


def test_doc_example_decodes():
    msg, used = decode(DOC_EXAMPLE + b"\x01garbage-after")
    assert used == len(DOC_EXAMPLE)
    assert list(msg) == [("a", TYPE_STR, "xy"), ("n", TYPE_INT, -2), ("u", TYPE_UINT, 258),
                         ("b", TYPE_BIN, b"\0")]
    assert msg.get("u") == 258 and msg.get("missing", 7) == 7


def test_repeated_names_and_round_trip():
    attrs = [("rcpt", "a@x"), ("rcpt", "b@y"), ("count", 2), ("data", bytes(range(256)))]
    msg, _ = decode(encode(attrs))
    assert msg.getall("rcpt") == ["a@x", "b@y"]
    assert msg.get("data") == bytes(range(256))
    assert msg.type_of("count") == TYPE_UINT


def test_incomplete_input_asks_for_more():
    for cut in range(len(DOC_EXAMPLE)):
        assert decode(DOC_EXAMPLE[:cut]) == (None, 0)


@pytest.mark.parametrize("data", [
    b"\x05\x01a\x00\x00\x00\x00\x00",                    # unknown type byte
    b"\x01\x00\x00\x00\x00\x00\x00",                     # empty name
    b"\x01\x01!\x00\x00\x00\x00\x00",                    # bad name character
    b"\x03\x01u\x00\x00\x00\x04\x00\x00\x00\x01\x00",    # number not 8 bytes
    b"\x01\x01s\x00\x00\x00\x03a\x00b\x00",              # NUL in a string
    b"\x04\x01b\x7f\xff\xff\xff",                        # forged length over the limit
])
def test_malformed_input_is_refused(data):
    with pytest.raises(AttrError):
        decode(data)


def test_writer_checks():
    with pytest.raises(AttrError):
        encode([("bad name", "x")])
    with pytest.raises(AttrError):
        encode([("s", "a\0b")])
    with pytest.raises(AttrError):
        encode([("x" * 65, "v")])
