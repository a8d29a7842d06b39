"""The uplink as a real charger process, watched by paho-mqtt (a client nobody here wrote).

The firmware runs in its own process, under the MicroPython unix port and under CPython, against
amqtt and Mosquitto. The test pulls the plug (SIGKILL: no DISCONNECT, the kernel closes the
socket) and boots it again from the same flash directory.
"""
import pytest

from fixtures.charger_process import ACK_KEYS, CP, ChargerProcess, Observer


@pytest.mark.parametrize("interp", ["micropython", "cpython"])
def test_power_cut_fires_the_will_and_reboot_resends_in_order(tmp_path, mqtt_broker, interp):
    b = mqtt_broker
    payloads = [b"OCMF|{\"n\":%d}|{}" % i for i in range(1, 4)]
    obs = Observer(b, "obs-1")
    cfg = {"host": b["host"], "port": b["port"], "dir": str(tmp_path / "ob"), "charger": CP,
           "put": [p.decode() for p in payloads], "ack_keys": ACK_KEYS}
    proc = ChargerProcess(interp, cfg)
    try:
        proc.wait_line("connected")
        obs.wait(lambda m: m[0].endswith("/receipt/3"))
        assert obs.receipts() == list(enumerate(payloads, 1))
        assert obs.wait(lambda m: m[0] == "cp/CP-H/status")[-1][1] == b"online"
        obs.ack(1, payloads[0])
        proc.wait_line("acked 1")
        obs.ack(3, b"not what was sent")          # names other bytes: ignored
    finally:
        proc.power_cut()
    assert obs.wait(lambda m: m[1] == b"offline")[0][0] == "cp/CP-H/status"   # last will
    late = Observer(b, "obs-late")
    # (amqtt sometimes delivers a retained message twice on subscribe: compare as a set)
    assert set(late.wait(lambda m: m[0] == "cp/CP-H/status")) == {
        ("cp/CP-H/status", b"offline", True)}
    late.close()

    with obs.lock:
        obs.msgs.clear()
    cfg["put"] = []
    proc = ChargerProcess(interp, cfg)                  # reboot from the same flash
    try:
        proc.wait_line("pending 2")
        obs.wait(lambda m: m[0].endswith("/receipt/3"))
        assert obs.receipts() == [(2, payloads[1]), (3, payloads[2])]
        obs.ack(2, payloads[1])
        obs.ack(3, payloads[2])
        proc.wait_line("acked 3")
    finally:
        proc.power_cut()
    obs.close()
