"""Genuine inputs for every fuzzed parser, made by the real code (the firmware's ledger through
host_tools.sim.charger, the operator tool's signer, the boards in boards/)."""
from __future__ import annotations

import json
import struct
import tempfile
from typing import Dict, List

from host_tools import paths
from host_tools.provision import operator_cmd as op
from host_tools.sim.charger import SimCharger

CHARGER = "CP-F"
COMMAND_CHARGER = "CP-T1"
COMMAND_NOW = 1800000000


def host_seeds(workdir: str) -> Dict[str, object]:
    """A charger with two sessions, its messages, OCMF records, a light-client bundle."""
    from host_tools.validator.service import Validator
    c = SimCharger(workdir + "/cp", CHARGER, seed=4)
    msgs = [c.charge(), c.charge(energy_wh=0, idle_s=4000)]
    v = Validator(workdir + "/seed.sqlite", "seed", tariffs=[c.tariff_json()], clock=lambda: c.now + 5)
    v.enroll(CHARGER, c.pubkey_der(), origin=c.origin)
    for (rt, rp), (ct, cp) in msgs:
        v.process(rt, rp)
        v.process(ct, cp)
    bundle = json.dumps(v.proof_bundle(CHARGER, seq=1))
    v.close()
    receipts = [rp for (_, rp), _ in msgs]
    return {"charger": c, "receipts": receipts, "checkpoints": [cp for _, (_, cp) in msgs],
            "ocmf": [json.loads(r.rsplit(b"|", 1)[0])["ocmf"].encode() for r in receipts],
            "bundle": bundle.encode(), "tariff": c.tariff_json().encode()}


def _crc16(frame: bytes) -> bytes:
    crc = 0xFFFF
    for b in frame:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


def modbus_seeds() -> List[bytes]:
    """<request selector byte> + a reply frame the firmware's master accepts for it."""
    frames = [b"\x01\x04\x04\x44\x7a\x00\x00", b"\x01\x03\x08" + bytes(range(8)),
              b"\x01\x06\x00\x10\x00\x01", b"\x01\x84\x02", b"\x01\x83\x06", b"\x02\x04\x04\x00\x00\x00\x00"]
    selectors = [0, 1, 2, 0, 1, 0]
    return [bytes([s]) + f + _crc16(f) for s, f in zip(selectors, frames)]


def command_seeds() -> Dict[str, object]:
    key = op.generate_key()
    t0 = COMMAND_NOW

    def signed(cmd, args=None, n=10, charger=COMMAND_CHARGER):
        return op.sign(key, charger, cmd, args, n=n, exp=t0 + 300)
    seeds = [signed("stop"), signed("current_limit", {"ma": 16000}, n=11),
             signed("tariff", {"tariff": "{\"v\":1}"}, n=12),
             signed("reserve", {"id_tag": "04A2B3C4", "until": t0 + 900}, n=13),
             signed("start", {"id_tag": "04A2B3C4", "connector": 1}, n=14),
             signed("authorize", {"id_tag": "x"}, n=15), signed("reset_fault", n=16),
             signed("cancel_reservation", {"connector": 2}, n=17)]
    return {"key": key, "pub_hex": op.public_spki_hex(key), "seeds": seeds, "now": t0,
            "cmd_key": op.command_key(key, COMMAND_CHARGER).hex()}


def resigned(key, raw: bytes) -> bytes:
    """A mutated payload signed by the operator key: reaches the checks after the signature."""
    payload = op.split(raw)[1] if b"|" in raw else raw
    return op.sign_payload(key, payload, COMMAND_CHARGER)


def remaced(key, raw: bytes) -> bytes:
    """A mutated command behind a valid command MAC (signature untouched): gets past the MAC
    screen to the signature and DER checks."""
    body = raw[65:] if op.split(raw)[0] is not None else raw
    mac = op.command_mac(op.command_key(key, COMMAND_CHARGER), COMMAND_CHARGER, body)
    return mac + b"|" + body


def ack_seeds() -> List[bytes]:
    """Authentic acks for the fuzz target's key (devtools/mp/fuzz_run.py _ack), and old forms."""
    from host_tools.validator.acks import make_ack
    key = bytes.fromhex("11" * 32)
    return [make_ack("v1", "CP-FUZZ", "receipt", 1, b"OCMF|{}|{}", "k1", key),
            make_ack("v1", "CP-FUZZ", "checkpoint", 12, b"note", "k1", key),
            b'{"seq":3,"sha256":"' + b"0f" * 32 + b'"}']


def tariff_seeds(charger_tariff: bytes) -> List[bytes]:
    import sys
    paths.firmware_on_path()
    sys.modules.pop("app.config", None)
    from app import config
    return [charger_tariff, config.DEFAULTS["tariff"].encode()]


def board_seeds() -> List[bytes]:
    return [p.read_bytes() for p in sorted(paths.BOARDS.glob("*.json"))]


def config_seeds() -> List[bytes]:
    return [json.dumps({"charger_id": "CP-0001", "meter_serial": "SN-1", "auth_mode": "remote",
                        "validators": ["val-1"], "mqtt_port": 1883}).encode(),
            b'{"charger_id":"CP-2","meter_serial":"X","allow_list":["A6D7DBB77F3545D973D684F3DF2356D7"],"loop_ms":20}']


def workdir() -> str:
    import os
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix="cp-fuzz-", dir=base)
