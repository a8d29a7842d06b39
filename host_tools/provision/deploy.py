"""Put the firmware on a board over mpremote, and read its public key (provisioning).

    python -m host_tools.provision.deploy --port /dev/ttyUSB0 --board boards/X.json --config my.json
    python -m host_tools.provision.deploy --port /dev/ttyUSB0 --pubkey
    ... --config my.json --mqtt-user CP-001 --mqtt-password-file pw --mqtt-ca ca.crt [--mqtt-tls-name N]
    python -m host_tools.provision.deploy --port /dev/ttyUSB0 --secrets cp-001.secrets.json

Deploy puts the firmware on the board the way the board file says ("firmware": frozen, romfs
or mpy; --mode overrides; host_tools/provision/fit.py explains the three), the board file at
/board.json, the configuration at /config.json and firmware/main.py at /main.py. Before anything
is written, the board file and the configuration are checked with the firmware's own loaders,
and the board is asked for its heap, ROMFS support and frozen modules: a mode that cannot fit is
refused with the figures.

  mpy     the mpy-cross output (build/mpy, host_tools/devtools/build_mpy.py) into /lib
  romfs   the same files as a ROMFS image (build/chargeproof.romfs), written to the ROM
          partition with `mpremote romfs deploy`; without a partition (the unix port) as the
          file /romfs.img that main.py mounts at /rom
  frozen  nothing but the board, configuration and main.py: the code is in the image

The --mqtt-* options put the charger's broker login and the broker's CA (PEM file, stored on
the board as DER hex, TLS on) into the configuration written to the board; the password never
appears on a command line. --pubkey makes the key on first boot (from the
board's RNG) or loads it, and prints only the public key: the private key never leaves the board.
--secrets writes the charger's secrets file (its validators' ack keys and the operator's pseudonym
key, host_tools/provision/secrets.py) to /secrets.json, after checking it with the firmware's own
loaders; it is never published. Rotating an ack key is the same command with the new file.

--resume (for the MicroPython unix port as a virtual board over socat, which has no soft reset)
adds mpremote's `resume` to every call.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys

from host_tools.devtools import build_mpy
from host_tools.paths import BUILD, ROOT
from host_tools.provision import fit

ROMFS_IMAGE = BUILD / "chargeproof.romfs"
# Prepended to main.py for a file-backed ROMFS image: mount it where a ROM partition would be.
_ROMFS_MOUNT = """# File-backed ROMFS (this port has no ROM partition): mounted where a partition would be.
import sys, vfs
vfs.mount(vfs.VfsRom(open("romfs.img", "rb").read()), "/rom")
sys.path.insert(0, "/rom")
"""


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
    return config.load(board, str(config_path) if config_path else None), board


def with_mqtt(config_path, user=None, password=None, cafile=None, tls_name=None, out_path=None):
    """The configuration file with the broker login and CA merged in (a new file at out_path);
    config_path itself when nothing is to be merged."""
    if user is None and cafile is None:
        return config_path
    cfg = json.loads(pathlib.Path(config_path).read_text()) if config_path else {}
    if user is not None:
        cfg["mqtt_user"] = user
        cfg["mqtt_password"] = password or ""
    if cafile is not None:
        from host_tools.mqtt_conn import ca_der_hex
        cfg["mqtt_tls"] = True
        cfg["mqtt_ca"] = ca_der_hex(cafile)
        if tls_name:
            cfg["mqtt_tls_name"] = tls_name
    out = pathlib.Path(out_path)
    out.write_text(json.dumps(cfg, indent=1, sort_keys=True) + "\n")
    out.chmod(0o600)                        # it holds the broker password
    return str(out)


def probe(port, resume=False):
    """What the board has: heap, word size, ROMFS, frozen firmware (fit.BoardInfo)."""
    return fit.BoardInfo.parse(mpremote(port, ["exec", fit.PROBE], resume))


def _mpy_bytes():
    return sum(p.stat().st_size for p in build_mpy.OUT.rglob("*.mpy"))


def build_romfs():
    """The firmware's .mpy files as one ROMFS image (mpremote's own builder); its path."""
    from mpremote.romfs import make_romfs
    image = make_romfs(str(build_mpy.OUT), mpy_cross=False)
    ROMFS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    ROMFS_IMAGE.write_bytes(image)
    return ROMFS_IMAGE


def check_secrets(secrets_path):
    """Load the secrets file with the firmware's loaders (raises ConfigError / ValueError)."""
    from host_tools.paths import firmware_on_path
    firmware_on_path()
    from app import config
    from ledger.cards import CardPseudonyms
    from uplink.acks import load_keys
    from uplink.commands import load_command_key
    sec = config.load_secrets(str(secrets_path))
    if not sec["ack_keys"]:
        raise ValueError("%s holds no ack keys: no receipt could ever leave the charger" % secrets_path)
    load_keys(sec["ack_keys"])
    CardPseudonyms(sec["pseudonym_key"])        # as the charger checks it at boot
    load_command_key(sec["cmd_key"])        # None: commands are screened by signature only
    return sec


def put_secrets(port, secrets_path, resume=False):
    sec = check_secrets(secrets_path)
    if sec["pseudonym_key"] is None:
        print("note: %s has no pseudonym_key: the charger will refuse every RFID card "
              "(docs/security.md, \"Card privacy\")" % secrets_path, file=sys.stderr)
    if sec["cmd_key"] is None:
        print("note: %s has no cmd_key: the charger checks commands by signature alone and a "
              "junk flood can starve them (docs/security.md, \"Commands under flood\")"
              % secrets_path, file=sys.stderr)
    mpremote(port, ["fs", "cp", str(secrets_path), ":secrets.json"], resume)


def deploy(port, board_path, config_path, resume=False, mode=None):
    cfg, board = check_files(board_path, config_path)
    mode = mode or board.firmware
    build_mpy.build(tests=False)
    image = build_romfs() if mode == "romfs" else None
    info = probe(port, resume)
    verdict = fit.check(mode, info, _mpy_bytes(), image.stat().st_size if image else 0)
    main_py = (ROOT / "firmware" / "main.py").read_text()
    if mode == "mpy":
        mpremote(port, ["fs", "mkdir", ":lib"], resume, check=False)  # exists after a first deploy
        for layer in sorted(p for p in build_mpy.OUT.iterdir() if p.is_dir()):
            mpremote(port, ["fs", "cp", "-r", str(layer), ":lib/"], resume)
    elif mode == "romfs" and info.rom_partition:
        mpremote(port, ["romfs", "deploy", str(image)], resume)
    elif mode == "romfs":
        mpremote(port, ["fs", "cp", str(image), ":romfs.img"], resume)
        main_py = _ROMFS_MOUNT + main_py
    mpremote(port, ["fs", "cp", str(board_path), ":board.json"], resume)
    if config_path:
        mpremote(port, ["fs", "cp", str(config_path), ":config.json"], resume)
    local_main = BUILD / "main.py"
    local_main.parent.mkdir(parents=True, exist_ok=True)
    local_main.write_text(main_py)
    mpremote(port, ["fs", "cp", str(local_main), ":main.py"], resume)
    return cfg, verdict


_PUBKEY = """
import sys, os
try:                                # a file-backed ROMFS image (see _ROMFS_MOUNT)
    os.stat('romfs.img')
    import vfs
    vfs.mount(vfs.VfsRom(open('romfs.img', 'rb').read()), '/rom')
    sys.path.insert(0, '/rom')
except OSError:                     # no image, or mounted by an earlier call
    pass
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
    ap.add_argument("--secrets", help="the charger's secrets file (ack keys, pseudonym key) -> /secrets.json")
    ap.add_argument("--data-dir", default=None, help="the charger's data directory on the board")
    ap.add_argument("--resume", action="store_true", help="no soft reset (unix-port virtual board)")
    ap.add_argument("--mode", choices=fit.MODES, help="how the firmware goes on (default: the "
                    "board file's \"firmware\")")
    ap.add_argument("--mqtt-user", help="the charger's broker login (its charger id)")
    ap.add_argument("--mqtt-password-file", help="file holding the charger's broker password")
    ap.add_argument("--mqtt-ca", help="PEM CA certificate of the broker (turns TLS on)")
    ap.add_argument("--mqtt-tls-name", help="name in the broker's certificate (default mqtt_host)")
    args = ap.parse_args(argv)
    if args.board and (args.mqtt_user or args.mqtt_ca):
        import tempfile
        password = None
        if args.mqtt_password_file:
            password = pathlib.Path(args.mqtt_password_file).read_text().strip("\r\n")
        tmp = tempfile.mkdtemp(prefix="cp-deploy-")
        args.config = with_mqtt(args.config, args.mqtt_user, password, args.mqtt_ca,
                                args.mqtt_tls_name, out_path=os.path.join(tmp, "config.json"))
    if args.board:
        try:
            cfg, verdict = deploy(args.port, args.board, args.config, args.resume, args.mode)
        except fit.DoesNotFit as exc:
            print("deploy refused: %s" % exc, file=sys.stderr)
            return 2
        print("deployed %s to %s: %s" % (cfg["charger_id"], args.port, verdict))
    if args.secrets:
        put_secrets(args.port, args.secrets, args.resume)
        print("secrets written to %s:/secrets.json" % args.port)
    if args.pubkey:
        data_dir = args.data_dir
        if data_dir is None and args.config:
            data_dir = json.loads(pathlib.Path(args.config).read_text()).get("data_dir")
        print(public_key(args.port, data_dir or "/data", args.resume))
    if not args.board and not args.pubkey and not args.secrets:
        ap.error("nothing to do: give --board (deploy), --secrets and/or --pubkey")
    return 0


if __name__ == "__main__":
    sys.exit(main())
