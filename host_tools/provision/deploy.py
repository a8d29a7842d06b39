"""Put the firmware on a board over mpremote, and read its public key (provisioning).

    python -m host_tools.provision.deploy --port /dev/ttyUSB0 --board boards/X.json --config my.json
    python -m host_tools.provision.deploy --port /dev/ttyUSB0 --pubkey

Deploy copies the mpy-cross output (build/mpy, see host_tools/devtools/build_mpy.py) to /lib, the board
file to /board.json, the configuration to /config.json and firmware/main.py to /main.py. The
board file and the configuration are checked here first, with the firmware's own loaders, so a
bad field is reported before anything is written. --pubkey makes the key on first boot (from the
board's RNG) or loads it, and prints only the public key: the private key never leaves the board.

--resume (for the MicroPython unix port as a virtual board over socat, which has no soft reset)
adds mpremote's `resume` to every call.
"""
import argparse
import json
import pathlib
import subprocess
import sys

from host_tools.devtools import build_mpy

from host_tools.paths import ROOT


def mpremote(port, args, resume=False, check=True):
    exe = pathlib.Path(sys.executable).parent / "mpremote"
    cmd = [str(exe) if exe.exists() else "mpremote", "connect", port]
    if resume:
        cmd.append("resume")
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError("mpremote %s failed:\n%s%s" % (" ".join(args), proc.stdout, proc.stderr))
    return proc.stdout


def check_files(board_path, config_path):
    """Load board and config with the firmware's loaders (raises BoardError / ConfigError)."""
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from app import config
    from app.board import load_board
    board = load_board(str(board_path))
    return config.load(board, str(config_path) if config_path else None)


def deploy(port, board_path, config_path, resume=False):
    cfg = check_files(board_path, config_path)
    build_mpy.build(tests=False)
    mpremote(port, ["fs", "mkdir", ":lib"], resume, check=False)      # exists after a first deploy
    for layer in sorted(p for p in build_mpy.OUT.iterdir() if p.is_dir()):
        mpremote(port, ["fs", "cp", "-r", str(layer), ":lib/"], resume)
    mpremote(port, ["fs", "cp", str(board_path), ":board.json"], resume)
    if config_path:
        mpremote(port, ["fs", "cp", str(config_path), ":config.json"], resume)
    mpremote(port, ["fs", "cp", str(ROOT / "firmware" / "main.py"), ":main.py"], resume)
    return cfg


_PUBKEY = """
import sys
sys.path.insert(0, 'lib')
from store import atomic
from ledger.keys import KeyStore
atomic.makedirs(%r)
print('PUBKEY', KeyStore(%r).public_key_hex())
"""


def public_key(port, data_dir="/data", resume=False):
    out = mpremote(port, ["exec", _PUBKEY % (data_dir, data_dir + "/key")], resume)
    for line in out.splitlines():
        if line.startswith("PUBKEY "):
            return line.split()[1]
    raise RuntimeError("no public key in the board's answer:\n" + out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True, help="serial port of the board (or a socat pty)")
    ap.add_argument("--board", help="board file (boards/*.json)")
    ap.add_argument("--config", help="charger configuration JSON (charger_id, meter_serial, ...)")
    ap.add_argument("--pubkey", action="store_true", help="print the charger's public key")
    ap.add_argument("--data-dir", default=None, help="the charger's data directory on the board")
    ap.add_argument("--resume", action="store_true", help="no soft reset (unix-port virtual board)")
    args = ap.parse_args(argv)
    if args.board:
        cfg = deploy(args.port, args.board, args.config, args.resume)
        print("deployed %s to %s" % (cfg["charger_id"], args.port))
    if args.pubkey:
        data_dir = args.data_dir
        if data_dir is None and args.config:
            data_dir = json.loads(pathlib.Path(args.config).read_text()).get("data_dir")
        print(public_key(args.port, data_dir or "/data", args.resume))
    if not args.board and not args.pubkey:
        ap.error("nothing to do: give --board (deploy) and/or --pubkey")
    return 0


if __name__ == "__main__":
    sys.exit(main())
