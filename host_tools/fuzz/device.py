"""The firmware's parsers under fuzz, in ONE real MicroPython process: inputs are generated here
(mutate.py, seeded) and written as batches; host_tools/devtools/mp/fuzz_run.py runs them."""
from __future__ import annotations

import json
import os
import subprocess
from typing import Any, Dict, List

from host_tools import paths
from host_tools.fuzz import mutate, seeds

TARGETS = ("modbus_reply", "command", "ack", "tariff", "board", "config")
HEAP = 16 * 1024 * 1024


def _inputs(name: str, n: int, seed: int, host: Dict[str, Any], cmd: Dict[str, Any]) -> List[bytes]:
    if name == "modbus_reply":
        return mutate.batch(seed, seeds.modbus_seeds(), n)
    if name == "command":
        genuine = cmd["seeds"]
        out = mutate.batch(seed, genuine, n)
        # a third re-signed by the operator key: they get past the signature to the checks;
        # a third behind a valid command MAC only: past the MAC screen to the signature checks
        for i in range(len(genuine), n, 3):
            out[i] = seeds.resigned(cmd["key"], out[i])
            if i + 1 < n:
                out[i + 1] = seeds.remaced(cmd["key"], out[i + 1])
        return out
    if name == "ack":
        return mutate.batch(seed, seeds.ack_seeds(), n)
    if name == "tariff":
        return mutate.batch(seed, seeds.tariff_seeds(host["tariff"]), n)
    if name == "board":
        return mutate.batch(seed, seeds.board_seeds(), n, raw_share=0.02)
    if name == "config":
        return mutate.batch(seed, seeds.config_seeds(), n)
    raise ValueError(name)


def run(n: int, seed: int, work: str, host: Dict[str, Any], only: str = "") -> List[dict]:
    """Run n inputs per firmware parser; one result dict per parser (see fuzz_run.py)."""
    cmd = seeds.command_seeds()
    extras = {"command": {"pub_hex": cmd["pub_hex"], "charger": seeds.COMMAND_CHARGER, "now": cmd["now"],
                          "cmd_key": cmd["cmd_key"]},
              "config": {"board": str(paths.DEFAULT_BOARD)}}
    targets = []
    for name in TARGETS:
        if only and only not in name:
            continue
        path = os.path.join(work, "mp-%s.hex" % name)
        with open(path, "w") as f:
            for data in _inputs(name, n, seed, host, cmd):
                f.write(data.hex() + "\n")
        targets.append({"name": name, "file": path, "extra": extras.get(name, {})})
    if not targets:
        return []
    manifest = os.path.join(work, "mp-manifest.json")
    with open(manifest, "w") as f:
        json.dump({"work": work, "targets": targets}, f)
    env = dict(os.environ, MICROPYPATH=os.pathsep.join([str(paths.FIRMWARE), str(paths.MPLIB)]))
    proc = subprocess.run([paths.MICROPYTHON, "-X", "heapsize=%d" % HEAP,
                           str(paths.MP_SIDE / "fuzz_run.py"), manifest],
                          env=env, capture_output=True, text=True, timeout=3600)
    results = [json.loads(line[5:]) for line in proc.stdout.splitlines() if line.startswith("FUZZ ")]
    if proc.returncode != 0 or len(results) != len(targets):
        done = {r["name"] for r in results}
        for t in targets:
            if t["name"] not in done:
                results.append({"name": t["name"], "inputs": 0, "failures": 1, "slowest_us": 0,
                                "examples": [[-1, "MicroPython run failed: " + proc.stderr[-800:], ""]]})
    return results
