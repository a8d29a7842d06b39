# uplink.commands: only commands signed by the operator key, for this charger, newer than the
# last one and not expired are handed to the session layer; everything else is answered with a
# reason and changes nothing. The messages are signed on the host with `cryptography`.
import json

from support.fwtest import raises
from store import atomic
from uplink import commands
from uplink.commands import CommandRejected, Verifier


def _verifier(tmp_path, oc, now=None):
    t0 = oc["t0"]
    return Verifier(tmp_path + "/cmd_n", oc["operator_spki"], oc["charger"],
                    now or (lambda: t0))


def _reason(v, msg):
    return raises(CommandRejected, v.verify, msg.encode()).reason


def test_valid_commands_are_accepted_with_their_arguments(tmp_path, operator_commands):
    v = _verifier(tmp_path, operator_commands)
    m = operator_commands["msgs"]
    c = v.verify(m["stop_n10"].encode())
    assert (c.name, c.args, c.n) == ("stop", {}, 10)
    c = v.verify(m["limit_n11"].encode())
    assert (c.name, c.args["ma"]) == ("current_limit", 16000)
    c = v.verify(m["tariff_n12"].encode())
    assert json.loads(c.args["tariff"])["per_kwh"] == 3900
    c = v.verify(m["reserve_n13"].encode())
    assert c.args == {"id_tag": "04A2B3C4", "until": operator_commands["t0"] + 900}


def test_each_bad_command_gets_its_reason_and_changes_nothing(tmp_path, operator_commands):
    v = _verifier(tmp_path, operator_commands)
    m = operator_commands["msgs"]
    expect = (
        ("unsigned", "unsigned"), ("unsigned_bar", "unsigned"),
        ("forged", "bad-signature"), ("other_key", "bad-signature"),
        ("sig_not_hex", "bad-signature"), ("sig_not_der", "bad-signature"),
        ("not_json", "bad-signature"), ("garbage_unsigned", "malformed"),
        ("bad_args", "malformed"), ("extra_arg", "malformed"), ("no_counter", "malformed"),
        ("unknown", "unknown-command"), ("wrong_charger", "wrong-charger"),
        ("expired_n20", "expired"),
    )
    for name, reason in expect:
        assert _reason(v, m[name]) == reason, name
        assert v.last_n == 0 and atomic.read(tmp_path + "/cmd_n") is None, name
    raises(CommandRejected, v.verify, b"")
    raises(CommandRejected, v.verify, b"x" * 5000)
    # Nothing above consumed a counter: the oldest valid command still goes through.
    assert v.verify(m["older_n5"].encode()).n == 5


def test_replays_are_refused_also_after_a_reboot(tmp_path, operator_commands):
    m = operator_commands["msgs"]
    v = _verifier(tmp_path, operator_commands)
    v.verify(m["stop_n10"].encode())
    assert _reason(v, m["stop_n10"]) == "replayed"
    assert _reason(v, m["older_n5"]) == "replayed"
    rebooted = _verifier(tmp_path, operator_commands)
    assert rebooted.last_n == 10
    assert _reason(rebooted, m["stop_n10"]) == "replayed"
    assert rebooted.verify(m["limit_n11"].encode()).n == 11


def test_expiry_follows_the_injected_clock(tmp_path, operator_commands):
    t0 = operator_commands["t0"]
    m = operator_commands["msgs"]
    clock = [t0 + 301]
    v = _verifier(tmp_path, operator_commands, now=lambda: clock[0])
    assert _reason(v, m["stop_n10"]) == "expired"
    assert v.last_n == 0
    clock[0] = t0 + 300                  # exp is the last second it is valid
    assert v.verify(m["stop_n10"].encode()).n == 10


def test_operator_key_must_be_a_p256_point(tmp_path, operator_commands):
    spki = operator_commands["operator_spki"]
    assert commands.load_operator_key(spki) == commands.load_operator_key(spki[-130:])
    raises(ValueError, commands.load_operator_key, spki[:-2] + "00")
    raises(ValueError, commands.load_operator_key, "04" + "11" * 64)


def test_result_messages_name_the_command_and_reason(tmp_path, operator_commands):
    v = _verifier(tmp_path, operator_commands)
    exc = raises(CommandRejected, v.verify, operator_commands["msgs"]["unknown"].encode())
    raw = operator_commands["msgs"]["unknown"].encode()
    res = json.loads(commands.rejection(exc, raw))
    assert res == {"ref": commands.ref_of(raw), "n": 42, "cmd": "self_destruct",
                   "result": "unknown-command", "detail": "self_destruct"}
    assert len(res["ref"]) == 16
    cmd = v.verify(operator_commands["msgs"]["stop_n10"].encode())
    assert cmd.ref == commands.ref_of(operator_commands["msgs"]["stop_n10"].encode())
    res = json.loads(commands.result("ok", cmd.n, cmd.name, ref=cmd.ref))
    assert res["result"] == "ok" and res["n"] == 10 and res["ref"] == cmd.ref


def test_while_the_clock_is_not_synchronised_only_clock_free_commands_pass(tmp_path, operator_commands):
    # A clock counting from 2000 until NTP answers makes every expiry meaningless: commands that
    # depend on it are refused and the result names the command; a stop still works.
    t0 = operator_commands["t0"]
    m = operator_commands["msgs"]
    status = ["U"]
    v = Verifier(tmp_path + "/cmd_n", operator_commands["operator_spki"], operator_commands["charger"],
                 lambda: t0, clock_status=lambda: status[0])
    exc = raises(CommandRejected, v.verify, m["limit_n11"].encode())
    assert exc.reason == "clock-unsynchronised" and "current_limit" in exc.detail
    assert exc.cmd == "current_limit" and v.last_n == 0              # the counter did not move
    assert _reason(v, m["reserve_n13"]) == "clock-unsynchronised"
    status[0] = "I"
    assert _reason(v, m["tariff_n12"]) == "clock-unsynchronised"
    assert v.verify(m["stop_n10"].encode()).n == 10                  # stopping needs no clock
    status[0] = "S"                                                  # NTP answered
    assert v.verify(m["limit_n11"].encode()).n == 11


# ---- the command MAC: junk is refused before any signature work --------------------------
def _mac_verifier(tmp_path, oc, key="cmd_key"):
    t0 = oc["t0"]
    return Verifier(tmp_path + "/cmd_n", oc["operator_spki"], oc["charger"], lambda: t0,
                    cmd_key=oc[key])


def test_with_a_command_key_only_commands_with_its_mac_reach_the_signature_check(
        tmp_path, operator_commands):
    oc = operator_commands
    m = oc["msgs"]
    v = _mac_verifier(tmp_path, oc)
    for name in ("no_mac", "bad_mac", "junk", "other_key", "unsigned", "garbage_unsigned",
                 "not_json", "sig_not_der", "no_counter"):
        exc = raises(CommandRejected, v.screen, m[name].encode())
        assert exc.reason == "bad-mac", (name, exc.reason)
        assert _reason(v, m[name]) == "bad-mac", name
    assert v.sig_checks == 0 and v.last_n == 0
    # The genuine ones pass: one signature check each (hex case of the MAC does not matter).
    assert v.verify(m["upper_mac"].encode()).n == 10
    assert v.verify(m["limit_n11"].encode()).n == 11
    assert v.sig_checks == 2
    # A replay of a genuine command is refused by the screen, without a signature check.
    assert raises(CommandRejected, v.screen, m["stop_n10"].encode()).reason == "replayed"
    assert _reason(v, m["stop_n10"]) == "replayed"
    assert v.sig_checks == 2


def test_a_mac_made_for_another_charger_or_operator_is_refused(tmp_path, operator_commands):
    oc = operator_commands
    m = oc["msgs"]
    v = _mac_verifier(tmp_path, oc, key="other_cmd_key")         # provisioned by someone else
    assert _reason(v, m["stop_n10"]) == "bad-mac"
    assert _reason(v, m["wrong_charger"]) == "bad-mac"          # signed and MACed for CP-OTHER
    assert v.sig_checks == 0


def test_without_a_command_key_the_mac_is_ignored_and_the_signature_decides(tmp_path,
                                                                           operator_commands):
    oc = operator_commands
    m = oc["msgs"]
    v = _verifier(tmp_path, oc)
    assert v.verify(m["no_mac"].encode()).n == 10               # an old operator tool's form
    assert _reason(v, m["junk"]) == "bad-signature"
    assert v.sig_checks == 2
    assert v.verify(m["limit_n11"].encode()).n == 11


def test_command_key_must_be_32_bytes_of_hex(tmp_path, operator_commands):
    oc = operator_commands
    for bad in ("ab" * 31, "zz" * 32, 7):
        raises(ValueError, Verifier, tmp_path + "/n", oc["operator_spki"], oc["charger"],
               lambda: 0, cmd_key=bad)
