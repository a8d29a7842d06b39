"""Check board files with the firmware's own loader before they go onto a charger.

    python -m host_tools.provision.board_lint                 # every boards/*.json
    python -m host_tools.provision.board_lint my-board.json   # given files

Prints one line per file (the pins it uses, or the BoardError naming the bad field) and exits 1
if any file is bad: the same check the charger runs at boot, run at provisioning time.
"""
import sys

from host_tools.paths import ROOT, firmware_on_path

firmware_on_path()

from app.board import BoardError, load_board   # noqa: E402  (firmware import root)


def lint(paths):
    """[(path, board or None, error or None)] for each path."""
    out = []
    for p in paths:
        try:
            out.append((p, load_board(str(p)), None))
        except BoardError as exc:
            out.append((p, None, str(exc)))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    paths = argv or sorted(str(p) for p in (ROOT / "boards").glob("*.json"))
    bad = 0
    for path, board, err in lint(paths):
        if err:
            bad += 1
            print("BAD  %s" % err)
            continue
        pins = ", ".join("%s=%d" % kv for kv in sorted(board.pins().items()))
        print("OK   %s: %s, %s at Modbus %d (%d %s%d), %d A %d-phase; %s" % (
            path, board.chip, board.meter_model, board.meter_address, board.rs485_baud,
            board.rs485_parity, board.rs485_stop_bits, board.rated_current_a, board.phases,
            pins))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
