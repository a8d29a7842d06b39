"""The host's parsers under hypothesis: the validator's receipt and checkpoint handling (the
whole Engine.process path, store included), OCMF, the light client's bundle, the CLI's file
inputs. Inputs: genuine messages mutated (mutate.py driven by hypothesis), JSON fields
replaced by arbitrary JSON values, re-signed receipts (past the signature, into the billing
checks), and raw bytes."""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import time
import traceback
from typing import Any, Callable, Dict, List, Tuple

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import HealthCheck, Phase, given, seed as hyp_seed, settings, strategies as st

from host_tools import paths
from host_tools.fuzz import SLOW_MS, mutate, seeds

P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12)


def _mutants(genuine: List[bytes]) -> st.SearchStrategy:
    return st.builds(lambda s, r: mutate.mutate(random.Random(r), s),
                     st.sampled_from(genuine), st.integers(0, 2 ** 32))


def _replace_field(doc_bytes: bytes, key_index: int, value: Any) -> bytes:
    doc = json.loads(doc_bytes)
    keys = list(doc)
    doc[keys[key_index % len(keys)]] = value
    return json.dumps(doc, separators=(",", ":")).encode()


def _field_variants(genuine: List[bytes]) -> st.SearchStrategy:
    """A receipt with one field replaced by an arbitrary JSON value (signature kept)."""
    def build(rec: bytes, i: int, value: Any) -> bytes:
        body, _, sig = rec.rpartition(b"|")
        return _replace_field(body, i, value) + b"|" + sig
    return st.builds(build, st.sampled_from(genuine), st.integers(0, 64), JSON_VALUES)


class _Signer:
    """A charger key on the host (cryptography): re-signs mutated receipts in its canonical
    form (DER, low S, lowercase hex), so they reach the checks behind the signature."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pub_der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(data, ec.ECDSA(hashes.SHA256())))
        return encode_dss_signature(r, min(s, P256_N - s))

    def receipt(self, fields: Dict[str, Any], ocmf_payload: str) -> bytes:
        sd = self.sign(ocmf_payload.encode()).hex().upper()
        fields = dict(fields)
        fields["ocmf"] = "OCMF|%s|%s" % (ocmf_payload, json.dumps(
            {"SA": "ECDSA-secp256r1-SHA256", "SE": "hex", "SM": "application/x-der", "SD": sd},
            separators=(",", ":")))
        body = json.dumps(fields, separators=(",", ":")).encode()
        return body + b"|" + self.sign(body).hex().encode()


def _resigned(genuine: List[bytes]) -> st.SearchStrategy:
    """Genuine receipts with fields changed (top level or inside the OCMF payload), as
    (fields, OCMF payload) for the target to sign: the signature verifies, everything after it
    is exercised."""
    def build(rec: bytes, where: int, i: int, value: Any, mutate_seed: int) -> Tuple[Any, str]:
        fields = json.loads(rec.rpartition(b"|")[0])
        payload = fields["ocmf"].split("|")[1]
        if where == 0:
            fields = json.loads(_replace_field(json.dumps(fields).encode(), i, value))
        elif where == 1:
            payload = _replace_field(payload.encode(), i, value).decode()
        elif where == 2:
            doc = json.loads(payload)
            reading = doc["RD"][i % len(doc["RD"])]
            reading[list(reading)[i % len(reading)]] = value
            payload = json.dumps(doc, separators=(",", ":"))
        else:
            raw = mutate.mutate(random.Random(mutate_seed), payload.encode())
            payload = raw.decode("utf-8", "replace").replace("|", "!")
        return fields, payload
    return st.builds(build, st.sampled_from(genuine), st.integers(0, 3), st.integers(0, 64),
                     JSON_VALUES, st.integers(0, 2 ** 32))


def _any_bytes(strategies: List[st.SearchStrategy]) -> st.SearchStrategy:
    return st.one_of(*strategies, st.binary(max_size=400))


# ---- the targets: name -> (strategy, call, errors the parser may raise) -------------------------
Target = Tuple[st.SearchStrategy, Callable, tuple]


def targets(work: str, host: Dict[str, Any]) -> Dict[str, Target]:
    """name -> (strategy, call, errors the parser may raise)."""
    out = _validator_targets(work, host)
    out.update(_tool_targets(work, host))
    return out


def _validator_targets(work: str, host: Dict[str, Any]) -> Dict[str, Target]:
    """Engine.process on receipts and checkpoints: it must always return a verdict, and
    evidence may come only from the charger's own (genuine) messages."""
    from host_tools.validator.engine import Engine
    charger = host["charger"]
    genuine_receipts, genuine_cps = list(host["receipts"]), list(host["checkpoints"])
    genuine = set(genuine_receipts + genuine_cps)
    signer = _Signer()
    engine = Engine(os.path.join(work, "fuzz.sqlite"), "fuzz", tariffs=[charger.tariff_json()],
                    clock=lambda: charger.now + 5)
    engine.enroll(seeds.CHARGER, charger.pubkey_der(), origin=charger.origin)
    engine.enroll("CP-S", signer.pub_der)
    engine.rejections.batch_rows = 256
    # the re-signed receipts name charger CP-S
    signed_seeds = [r.replace(b'"charger":"CP-F"', b'"charger":"CP-S"') for r in genuine_receipts]

    def process(topic: str) -> Callable[[bytes], None]:
        def call(data: bytes) -> None:
            r = engine.process(topic, data)
            assert r.status in ("accepted", "flagged", "duplicate", "rejected", "parked"), r
            if r.evidence is not None and "CP-S" not in topic:
                assert data in genuine, "evidence from a message that is not the charger's: %r" % r
        return call
    signed_process = process("cp/CP-S/receipt/1")

    def signed_receipt(item: Any) -> None:
        fields, payload = item
        if isinstance(fields, dict) and "ocmf" in fields:
            # next in the log and in the sequence, so the billing checks run too
            if type(fields.get("index")) is int:
                fields["index"] = engine.registry.tree("CP-S").size
            last = engine.db.last_receipt("CP-S", any_meter=True)
            if type(fields.get("seq")) is int:
                fields["seq"] = last["seq"] + 1 if last else 1
            data = signer.receipt(fields, payload)
        else:
            data = json.dumps(fields).encode() + b"|00"
        signed_process(data)

    return {
        "validator_receipt": (_any_bytes([_mutants(genuine_receipts), _field_variants(genuine_receipts)]),
                              process("cp/%s/receipt/1" % seeds.CHARGER), ()),
        "validator_receipt_signed": (_resigned(signed_seeds), signed_receipt, ()),
        "validator_checkpoint": (_any_bytes([_mutants(genuine_cps)]),
                                 process("cp/%s/checkpoint/2" % seeds.CHARGER), ()),
    }


def _tool_targets(work: str, host: Dict[str, Any]) -> Dict[str, Target]:
    """OCMF records, the light client's bundle, the CLI's file inputs (exit 0/1/2 only)."""
    from host_tools import cli
    from host_tools.lightclient import check as lightclient
    from host_tools.verify import ocmf
    pub = host["charger"].pubkey_der()
    cli_files = os.path.join(work, "cli-input")

    def cli_input(data: bytes) -> None:
        with open(cli_files, "wb") as f:
            f.write(data[1:])
        argv = [["enroll", "--db", os.path.join(work, "cli.sqlite"), "--charger", "CP-Z", "--pubkey", cli_files],
                ["tariff", "--db", os.path.join(work, "cli.sqlite"), "--file", cli_files],
                ["replay", "--db", os.path.join(work, "cli-replay.sqlite"), "--export", cli_files,
                 "--enroll-from-export"]][data[0] % 3 if data else 0]
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = cli.main(argv)
        except SystemExit as exc:             # argparse's usage errors
            code = exc.code
        assert code in (0, 1, 2), code

    def ocmf_parse(data: bytes) -> None:
        ocmf.parse(data.decode("utf-8", "replace")).begin_end()

    def bundle(data: bytes) -> None:
        lightclient.check(data.decode("utf-8", "replace"), pub)

    export = _export(work, host)
    cli_seeds = [b"\x00" + pub.hex().encode(), b"\x00" + pub, b"\x01" + host["tariff"], b"\x02" + export]
    return {
        "ocmf": (_any_bytes([_mutants(list(host["ocmf"]))]), ocmf_parse, (ocmf.OcmfError,)),
        "lightclient_bundle": (_any_bytes([_mutants([host["bundle"]])]), bundle, (lightclient.Invalid,)),
        "cli_inputs": (_any_bytes([_mutants(cli_seeds)]), cli_input, ()),
    }


def _export(work: str, host: Dict[str, Any]) -> bytes:
    """A genuine `chargeproof export --format json` of the seed ledger."""
    from host_tools.validator import export as export_mod
    from host_tools.validator.store import LedgerDB
    with LedgerDB(os.path.join(work, "seed.sqlite")) as db:
        return json.dumps(export_mod.export_json(db)).encode()


def run_target(name: str, strategy: st.SearchStrategy, call: Callable, allowed: tuple, n: int,
               seed: int) -> Dict[str, Any]:
    """Run n inputs; a failure is any exception other than `allowed` (recorded, not raised,
    so the count goes on)."""
    stats: Dict[str, Any] = {"name": name, "inputs": 0, "failures": 0, "examples": [],
                             "slowest_us": 0, "slowest_input": -1}

    @hyp_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(data: Any) -> None:
        t0 = time.perf_counter()
        try:
            call(data)
        except allowed:
            pass
        except Exception as exc:          # the finding: record it, keep counting
            stats["failures"] += 1
            if len(stats["examples"]) < 5:
                shown = data if isinstance(data, bytes) else repr(data).encode()
                ours = [f for f in traceback.extract_tb(exc.__traceback__) if str(paths.ROOT) in f.filename]
                where = "%s:%s" % (os.path.relpath(ours[-1].filename, paths.ROOT), ours[-1].lineno) if ours else "?"
                stats["examples"].append([stats["inputs"], "%s at %s" % (repr(exc)[:300], where),
                                          shown[:20000].hex()])
        us = int((time.perf_counter() - t0) * 1e6)
        if us > SLOW_MS * 1000:
            us = min(us, _retime(call, data))
        if us > stats["slowest_us"]:
            stats["slowest_us"], stats["slowest_input"] = us, stats["inputs"]
        stats["inputs"] += 1
    one()
    return stats


def _retime(call: Callable, data: Any) -> int:
    """A slow input is timed again: on a shared machine one slow run is often the scheduler,
    not the parser (the report counts the faster of the two)."""
    t0 = time.perf_counter()
    try:
        call(data)
    except Exception:
        pass
    return int((time.perf_counter() - t0) * 1e6)


def run(n: int, seed: int, work: str, host: Dict[str, Any], only: str = "") -> List[Dict[str, Any]]:
    out = []
    for name, (strategy, call, allowed) in targets(work, host).items():
        if only and only not in name:
            continue
        try:
            call(b"\x00")                 # warm up (imports, caches) outside the timing
        except Exception:
            pass
        out.append(run_target(name, strategy, call, allowed, n, seed))
    return out
