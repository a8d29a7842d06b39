"""C2SP tlog-cosignature/v1 (Ed25519) against the spec's example and transparency-dev/formats' vectors.

Sources of the vectors (facts, not code):
  - https://c2sp.org/tlog-cosignature (C2SP/C2SP tlog-cosignature.md): the example cosigned
    checkpoint of example.com/behind-the-sofa and the signed message it prints for time 1679315147;
  - transparency-dev/formats note/note_cosigv1_test.go: TestCoSigV1NewVerifier (vkeys that must be
    accepted or refused) and TestCosignatureTimestamp (a cosignature whose time is 1727964367, and
    a 68-byte plain Ed25519 signature that is not a cosignature);
  - RFC 8032 section 7.1, TEST 1: the Ed25519 seed / public key pair.
"""
import base64

import pytest

from host_tools.verify import cosignature as cs

SPEC_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n")
SPEC_MESSAGE = (b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
                b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
NOTE = "chargeproof.local/CP-1\n3\n" + base64.b64encode(bytes(range(32))).decode() + "\ntime 1768455000\n\n" \
       "\u2014 chargeproof.local/CP-1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"


def test_spec_example_line_parses_to_its_key_id_and_time_and_signed_message():
    lines = cs.signature_lines(SPEC_NOTE)
    assert [line.name for line in lines] == ["example.com/behind-the-sofa", "witness.example.com/w1"]
    w1 = lines[1]
    assert len(w1.key_id + w1.payload) == cs.SIGNATURE_LEN == 76
    assert w1.key_id.hex() == "8d66cf3f"
    assert w1.timestamp == 1679315147
    assert cs.signed_message(cs.note_body(SPEC_NOTE), w1.timestamp) == SPEC_MESSAGE
    with pytest.raises(cs.CosignatureError):
        _ = lines[0].timestamp                    # the log's own line is not a cosignature/v1


def test_transparency_dev_cosignature_timestamp_vectors():
    line = cs.Line("\u2014 w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==")
    assert line.timestamp == 1727964367
    plain = cs.Line("\u2014 w eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=")
    with pytest.raises(cs.CosignatureError):
        _ = plain.timestamp                       # "wrong type of signature"
    with pytest.raises(cs.CosignatureError):
        cs.Line("\u2014 w 5%/$!")                 # "gibberish"


def test_transparency_dev_verifier_key_vectors():
    native = cs.parse_vkey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2")
    assert native.key_id.hex() == "da77ade7" and native.name == "remora.n621.de"
    assert native.vkey() == "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    converted = cs.parse_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")
    # a type-0x01 key used for cosignatures gets the 0x04 key id, not the vkey's
    assert converted.key_id == cs.key_id("TEST", converted.public_key, 0x04) != bytes.fromhex("7997405c")
    for bad in ("bananas.sigstore.dev+12344556", "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
                "rekor.sigstore.dev+12345678+AwEB",
                "remora.n621.de+00000000+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
                "remora.n621.de+NOT_A_NUMBER+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"):
        with pytest.raises(cs.CosignatureError):
            cs.parse_vkey(bad)


def test_rfc8032_key_and_vkey_round_trip():
    signer = cs.Cosigner.from_seed("val-1", RFC8032_SEED)
    assert signer.witness.public_key == RFC8032_PUB
    assert signer.seed() == RFC8032_SEED
    back = cs.parse_vkey(signer.vkey())
    assert back.public_key == RFC8032_PUB and back.key_id == cs.key_id("val-1", RFC8032_PUB)


def test_cosign_then_verify_a_quorum_of_distinct_known_witnesses():
    a, b, c = cs.Cosigner("val-a"), cs.Cosigner("val-b"), cs.Cosigner("val-c")
    stranger = cs.Cosigner("val-x")
    note = cs.add_lines(NOTE, [a.cosign(NOTE, 1768455100), b.cosign(NOTE, 1768455101),
                               stranger.cosign(NOTE, 5)])
    note = cs.add_lines(note, [a.cosign(NOTE, 1768455100)])          # no duplicate line
    assert note.count("val-a") == 1
    known = [a.witness, b.witness, c.witness]
    assert cs.verify_quorum(note, known, 2) == {"val-a": 1768455100, "val-b": 1768455101}
    with pytest.raises(cs.QuorumError):
        cs.verify_quorum(note, known, 3)
    with pytest.raises(cs.QuorumError):
        cs.verify_quorum(NOTE, known, 1)
    assert cs.verify_quorum(NOTE, known, 0) == {}
    assert cs.verify_line(a.witness, note, cs.signature_lines(note)[1]) == 1768455100


def test_a_known_cosignature_over_other_text_fails_the_note():
    a = cs.Cosigner("val-a")
    line = a.cosign(NOTE, 1768455100)
    other_root = NOTE.replace("3\n", "4\n", 1)
    with pytest.raises(cs.CosignatureError, match="does not verify"):
        cs.verify_quorum(cs.add_lines(other_root, [line]), [a.witness], 1)
    # the extension line (time) is covered too
    with pytest.raises(cs.CosignatureError, match="does not verify"):
        cs.verify_quorum(cs.add_lines(NOTE.replace("time 1768455000", "time 1768455001"), [line]),
                         [a.witness], 1)
    # a line that claims another timestamp is refused
    raw = bytearray(base64.b64decode(line.split()[-1]))
    raw[11] ^= 1
    forged = "\u2014 val-a " + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(cs.CosignatureError):
        cs.verify_quorum(cs.add_lines(NOTE, [forged]), [a.witness], 1)


def test_malformed_inputs_are_clear_errors():
    with pytest.raises(cs.CosignatureError):
        cs.note_body("only-origin\n")
    with pytest.raises(cs.CosignatureError):
        cs.signature_lines("a\n1\nAA==\n")
    with pytest.raises(cs.CosignatureError):
        cs.Witness("bad name", bytes(32))
    with pytest.raises(cs.CosignatureError):
        cs.signed_message(b"x\n1\nr\n", -1)
