# uplink.inbox: the command queue screens each message as it arrives. With a command key,
# junk (no valid MAC, replays) never takes a place in the queue and never reaches a signature
# check; refused messages are counted and answered once per poll; a full queue drops the newest.
import json

from uplink.commands import Verifier
from uplink.inbox import CommandInbox


def _inbox(tmp_path, oc, cmd_key=True, max_pending=2):
    v = Verifier(tmp_path + "/cmd_n", oc["operator_spki"], oc["charger"], lambda: oc["t0"],
                 cmd_key=oc["cmd_key"] if cmd_key else None)
    return v, CommandInbox(v, max_pending)


def test_junk_takes_no_place_in_the_queue_and_real_commands_get_through(tmp_path,
                                                                        operator_commands):
    m = operator_commands["msgs"]
    v, box = _inbox(tmp_path, operator_commands)
    for _ in range(50):
        for name in ("junk", "bad_mac", "no_mac", "other_key"):
            assert box.offer(m[name].encode()) is False
    assert box.offer(m["stop_n10"].encode()) is True
    assert box.offer(m["limit_n11"].encode()) is True
    assert (box.junk, box.dropped) == (200, 0)
    refused = json.loads(box.take_refused())          # one answer for the 200
    assert refused["result"] == "bad-mac" and box.take_refused() is None
    assert [v.verify(box.pop()).n, v.verify(box.pop()).n] == [10, 11]
    assert box.pop() is None
    assert v.sig_checks == 2                          # none spent on junk
    assert box.offer(m["stop_n10"].encode()) is False  # a replay: refused by the screen
    assert json.loads(box.take_refused())["result"] == "replayed"


def test_a_full_queue_drops_the_newest_and_counts_it(tmp_path, operator_commands):
    m = operator_commands["msgs"]
    v, box = _inbox(tmp_path, operator_commands, cmd_key=False)
    for name in ("junk", "stop_n10", "limit_n11"):    # no command key: the screen cannot tell
        box.offer(m[name].encode())
    assert (box.junk, box.dropped) == (0, 1)
    assert box.pop() == m["junk"].encode()
