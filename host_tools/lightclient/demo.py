"""Show the light client at work: a real receipt from a simulated session (the firmware's
tariff, KeyStore and ChargerLog, run here on CPython), written out as the files a driver gets,
checked by `python -m host_tools.lightclient`, then each kind of tampering, each rejected with
its own reason.

  python -m host_tools.lightclient.demo [OUT_DIR]

Most forgeries are re-signed with the charger's own key (what a buggy or dishonest charger
could publish), so that exactly one check fails in each.
"""
import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

from host_tools.paths import ROOT, firmware_on_path

firmware_on_path()

from host_tools.verify import merkle                               # noqa: E402
from host_tools.verify import receipt as host_receipt              # noqa: E402
from ledger import checkpoint, ocmf, receipt                # noqa: E402
from ledger.keys import KeyStore                            # noqa: E402
from ledger.log import ChargerLog                           # noqa: E402
from session.tariff import EnergySplit, Tariff, price       # noqa: E402

ORIGIN = "chargeproof.example/CP-0001"
CARD_ID = "A6D7DBB77F3545D973D684F3DF2356D7"   # the driver's card, by its pseudonym (ledger/cards.py)
T_BEGIN = 1768455000          # 2026-01-15 05:30 UTC, 06:30 local: the 07:00 band start is crossed
TARIFF = {"v": 1, "currency": "EUR", "utc_offset_min": 60, "session_fee_minor": 50,
          "bands": [{"start_min": 0, "kwh_price_milli": 25000},
                    {"start_min": 420, "kwh_price_milli": 39000},
                    {"start_min": 1320, "kwh_price_milli": 29000}],
          "idle_min_price_milli": 10000, "idle_grace_min": 30, "tax_bp": 1900}


class _Clock:
    def __init__(self):
        self.t = T_BEGIN + 10 ** 5

    def time(self):
        self.t += 1
        return self.t


def simulated_session(begin_wh, begin_time=T_BEGIN, tariff=None):
    """A session metered the way the session layer does it: samples every 7 minutes at
    11 kW through a band start, then 50 idle minutes before unplugging."""
    t = Tariff(tariff or TARIFF)
    split = EnergySplit(t, begin_time, begin_wh)
    wh = begin_wh
    for step in range(1, 13):
        wh += 1283
        split.sample(begin_time + 420 * step, wh)
    end = begin_time + 420 * 12 + 3000
    split.sample(end, wh)
    net, tax, total = price(t, split.segments, begin_time, split.charge_end, end)
    return {"charger_id": "CP-0001", "evse_id": "DE*CPF*E0001*1", "meter_vendor": "Eastron",
            "meter_model": "SDM630", "meter_serial": "SN21000042", "user_id": CARD_ID,
            "user_id_type": "LOCAL", "id_level": "HEARSAY", "id_flags": ["RFID_PLAIN"],
            "begin_wh": begin_wh, "end_wh": wh, "begin_time": begin_time, "end_time": end,
            "charge_end_time": split.charge_end, "clock_status": "S", "segments": split.segments,
            "tariff": t, "net_minor": net, "tax_minor": tax, "price_minor": total,
            "currency": t.currency, "stop_reason": "EVDisconnected", "firmware": "0.1.0"}


class World:
    """A charger with three recorded sessions, and a forger holding its key."""

    def __init__(self, tmp, tariff=None, t_begin=T_BEGIN):
        self.tariff = tariff or TARIFF          # any tariff document (version 1 or 2)
        tmp = pathlib.Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        self.key = KeyStore(str(tmp / "key"), urandom=os.urandom)
        self.other_key = KeyStore(str(tmp / "other-key"), urandom=os.urandom)
        self.log = ChargerLog(str(tmp / "log"), self.key, "CP-0001", ORIGIN, _Clock())
        self.records = []
        for i in range(3):
            rec, cp, _ = self.log.append_session(simulated_session(1000000 + 20000 * i, t_begin + 86400 * i,
                                                                   self.tariff))
            self.records.append(rec)
        self.cp = cp
        self.pub = self.key.public_key_der()

    def bundle(self, index=1, records=None, note=None, tariff=None):
        records = records or self.records
        tariff = tariff or self.tariff
        tree = merkle.Tree(records)
        if note is None:
            note = checkpoint.build(ORIGIN, tree.size, tree.root(), T_BEGIN + 9999, self.key)
        return host_receipt.make_bundle(records[index], index, tree.size,
                                        tree.inclusion_proof(index), note, tariff)

    def forged(self, edit_body=None, edit_ocmf_payload=None, index=1):
        """Receipt `index` with its body and/or OCMF payload edited, everything re-signed."""
        body = receipt.split(self.records[index])[0].decode()
        fields = json.loads(body)
        if edit_ocmf_payload:
            payload = ocmf.split(fields["ocmf"])[0]
            new_ocmf = ocmf.sign(edit_ocmf_payload(payload), self.key)
            body = body.replace(json.dumps(fields["ocmf"]), json.dumps(new_ocmf))
        if edit_body:
            body = edit_body(body)
        recs = list(self.records)
        recs[index] = receipt.sign(body, self.key)
        return self.bundle(index, recs)

    def proof_file(self, index, size, proof):
        return json.dumps({"index": index, "tree_size": size,
                           "inclusion_proof": [base64.b64encode(h).decode() for h in proof]})

    def tamperings(self):
        """{expected reason: (what was done, bundle text, extra CLI files {flag: text})}."""
        b = self.bundle()
        note = json.loads(b)["checkpoint"]
        fields = json.loads(receipt.split(self.records[1])[0])
        tms = [p.split('"')[0] for p in ocmf.split(fields["ocmf"])[0].split('"TM":"')[1:]]

        def swap_times(p):
            return p.replace(tms[0], "@").replace(tms[1], tms[0]).replace("@", tms[1])
        wrong_proof = merkle.Tree(self.records).inclusion_proof(2)
        return {
            "bad-ocmf-signature": ("card UID changed inside the signed OCMF payload",
                                   self.forged(edit_body=lambda x: x.replace(CARD_ID, CARD_ID[:-1] + "0")), {}),
            "bad-receipt-signature": ("stop reason edited in the receipt",
                                      b.replace("EVDisconnected", "Local"), {}),
            "energy-mismatch": ("OCMF end reading raised by 1000 kWh (OCMF re-signed)",
                                self.forged(edit_ocmf_payload=lambda p: p.replace(
                                    '"TX":"E","RV":1', '"TX":"E","RV":2')), {}),
            "begin-after-end": ("OCMF begin and end times swapped (OCMF re-signed)",
                                self.forged(edit_ocmf_payload=swap_times), {}),
            "price-mismatch": ("price and tax raised by 1 EUR (receipt re-signed)",
                               self.forged(edit_body=lambda x: x.replace(
                                   ',"price":', ',"price":1').replace(',"tax":', ',"tax":1')), {}),
            "tariff-hash-mismatch": ("a different tariff document in the bundle",
                                     self.bundle(tariff=dict(TARIFF, tax_bp=1600)), {}),
            "not-included": ("inclusion proof of another leaf",
                             b, {"--proof": self.proof_file(1, 3, wrong_proof)}),
            "bad-checkpoint-signature": ("checkpoint time edited",
                                         self.bundle(note=note.replace(
                                             "time %d" % (T_BEGIN + 9999),
                                             "time %d" % (T_BEGIN + 9998))), {}),
            "wrong-key": ("checked against another charger's public key",
                          b, {"--pubkey": self.other_key.public_key_hex()}),
            "inconsistent-checkpoints": ("a later checkpoint, same size, leaf 0 rewritten",
                                         b, {"--checkpoint": self.rewritten_checkpoint()}),
        }

    def rewritten_checkpoint(self):
        """The charger signs a tree of the same size whose history differs (leaf 0 replaced)."""
        forked = merkle.Tree([b"rewritten"] + self.records[1:])
        return checkpoint.build(ORIGIN, forked.size, forked.root(), T_BEGIN + 10 ** 6, self.key)


def run_cli(workdir, bundle_text, pubkey_hex, extra=None):
    """Run the real command on files; return (exit code, printed line)."""
    workdir = pathlib.Path(workdir)
    (workdir / "receipt.json").write_text(bundle_text)
    args = ["--receipt", str(workdir / "receipt.json"), "--pubkey", pubkey_hex]
    for flag, text in (extra or {}).items():
        if flag == "--pubkey":
            args[3] = text
            continue
        path = workdir / (flag.strip("-") + ".json")
        path.write_text(text)
        args += [flag, str(path)]
    proc = subprocess.run([sys.executable, "-m", "host_tools.lightclient"] + args,
                          cwd=ROOT, capture_output=True, text=True)
    return proc.returncode, proc.stdout.strip()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = pathlib.Path(argv[0]) if argv else pathlib.Path(tempfile.mkdtemp(prefix="lightclient-"))
    out.mkdir(parents=True, exist_ok=True)
    w = World(out / "charger")
    (out / "charger.pub.hex").write_text(w.key.public_key_hex() + "\n")
    code, line = run_cli(out, w.bundle(), w.key.public_key_hex())
    print("genuine receipt:  exit %d  %s" % (code, line))
    ok = code == 0
    for reason, (what, bundle, extra) in w.tamperings().items():
        code, line = run_cli(out, bundle, w.key.public_key_hex(), extra)
        print("%-40s exit %d  %s" % (what + ":", code, line[:110]))
        ok = ok and code == 1 and line.startswith("INVALID: %s:" % reason)
    shutil.copy(out / "receipt.json", out / "last-tampered-receipt.json")
    (out / "receipt.json").write_text(w.bundle())
    print("files in %s (receipt.json = the genuine bundle)" % out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
