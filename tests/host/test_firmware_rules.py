"""Rules over the firmware's sources, checked with CPython's ast (MicroPython has none):
no class over 300 lines and no function over 60 (the code stays cut along its seams), and
every fault code the firmware raises is in the fault table (firmware/session/faults.py), and
the board's image (firmware/manifest.py) holds every firmware module its modules import."""
import ast
import sys
from pathlib import Path

from host_tools.paths import FIRMWARE

MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*.py") if p.name != "manifest.py")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def test_no_class_or_function_too_long():
    too_long = []
    for path in _modules():
        for node in ast.walk(_tree(path)):
            limit = None
            if isinstance(node, ast.ClassDef):
                limit = MAX_CLASS_LINES
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = MAX_FUNCTION_LINES
            if limit is not None and node.end_lineno - node.lineno + 1 > limit:
                too_long.append("%s:%d %s (%d lines)" % (
                    path.relative_to(FIRMWARE), node.lineno, node.name,
                    node.end_lineno - node.lineno + 1))
    assert len(_modules()) > 40
    assert too_long == []


def _strings(node: ast.AST) -> list[str]:
    return [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []


def _driver_reasons(path: Path, exc_name: str) -> set[str]:
    """Fault reasons a driver raises, latches or keeps in a table."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in (exc_name, "_latch", "_fault") and node.args:
                found.update(_strings(node.args[0]))
        elif isinstance(node, ast.Assign):
            targets = [getattr(t, "id", None) or getattr(t, "attr", None) for t in node.targets]
            if "reason" in targets or "fault" in targets:
                found.update(_strings(node.value))
            if "_FAULT_REASON" in targets:
                for v in node.value.values:
                    found.update(_strings(v))
    return found


def _named_codes(path: Path) -> set[str]:
    """Codes the session and app layers pass by name: on_fault("x"), fail("x"),
    fault_state.record("x", ..), faults.record(now, "x", ..), return "x", detail."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            name = node.func.attr
            if name in ("on_fault", "fail") or (name == "record" and len(node.args) == 2):
                found.update(_strings(node.args[0]))
            elif name == "record" and len(node.args) == 3:
                found.update(_strings(node.args[1]))
        elif isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            found.update(_strings(node.value.elts[0]))
    return found


def test_every_fault_code_is_in_the_table():
    sys.path.insert(0, str(FIRMWARE))
    try:
        from session import faults
    finally:
        sys.path.remove(str(FIRMWARE))
    drivers = FIRMWARE / "drivers"
    codes = set()
    for device, exc in (("pilot", "PilotFault"), ("contactor", "ContactorFault"),
                        ("rcd", "RcdFault")):
        reasons = _driver_reasons(drivers / (device + ".py"), exc)
        assert len(reasons) >= 3, (device, reasons)
        codes.update(faults.code_of(device, r) for r in reasons)
    for path in list((FIRMWARE / "session").glob("*.py")) + [FIRMWARE / "app" / "main.py"]:
        codes.update(_named_codes(path))
    assert {"meter-silent", "meter-jump", "meter-backwards", "loop", "ledger",
            "session-journal", "pilot-diode", "contactor-welded", "rcd-tripped"} <= codes
    assert sorted(codes - set(faults.FAULTS)) == []


def _imported(tree: ast.Module) -> set[str]:
    """Every absolute module name an import statement anywhere in the tree may load."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(node.module + "." + a.name for a in node.names)     # from pkg import module
    return out


def _dotted(rel: Path) -> str:
    return str(rel.with_suffix("")).replace("/", ".").replace(".__init__", "")


def test_board_image_holds_every_firmware_module_it_imports():
    # A module left out of the manifest imports fine in every test (the tests' builds add the
    # host-only modules) and fails only on the board, at the moment it is first needed.
    from host_tools.devtools import mp32
    on_board = mp32.board_modules()
    frozen = {_dotted(rel) for rel in on_board}
    firmware = {_dotted(p.relative_to(FIRMWARE)) for p in _modules()}
    missing = sorted("%s imports %s" % (rel, name) for rel in on_board
                     for name in _imported(_tree(FIRMWARE / rel)) if name in firmware - frozen)
    assert "app.charger_app" in frozen and "hal.sim" not in frozen
    assert missing == []
