"""Light client: check one charging receipt offline, with nothing but the charger's public key.

  python -m host_tools.lightclient --receipt BUNDLE.json --pubkey KEY_HEX_OR_FILE
                                   [--checkpoint CP.txt] [--proof PROOF.json] [--tariff T.json]
                                   [--consistency CONS.json]
                                   [--witness VKEY_OR_FILE ... --quorum K]

BUNDLE.json is the driver's receipt bundle (host_tools/verify/receipt.py). --checkpoint replaces the
bundle's checkpoint (e.g. a newer one from a validator or a witness); --proof then supplies
the inclusion proof for that size: {"index": i, "tree_size": n, "inclusion_proof": [b64...]},
and --consistency an RFC 9162 proof that it extends the bundle's checkpoint:
{"old_size": m, "new_size": n, "proof": [b64...]} (the proof server's /consistency answer).
Two checkpoints of one size with different roots need no proof: they convict the log.
--witness names a validator (witness) the driver trusts, as a C2SP vkey (`chargeproof witness-key`
prints one); --quorum K then requires valid tlog-cosignatures from K distinct trusted witnesses on
the checkpoint the receipt is proven against (the bundle carries them under "cosignatures", or as
signature lines of its checkpoint note). A known witness's line that fails to verify fails the
bundle; unknown lines are ignored.
Prints "VALID: ..." (exit 0) or "INVALID: <reason>: <detail>" (exit 1). Reasons:
  malformed-bundle, bad-public-key, malformed-checkpoint, wrong-key, bad-checkpoint-signature,
  malformed-receipt, bad-receipt-signature, not-included, malformed-ocmf, bad-ocmf-signature,
  begin-after-end, charger-mismatch, pagination-mismatch, time-mismatch, energy-mismatch,
  tariff-hash-mismatch, bad-tariff, price-mismatch, inconsistent-checkpoints, bad-witness-key,
  bad-cosignature, missing-cosignatures
"""
import argparse
import base64
import json
import os
import sys

from host_tools.verify import checkpoint as cpmod
from host_tools.verify import cosignature as cosig
from host_tools.verify import merkle
from host_tools.verify import ocmf
from host_tools.verify import sigcheck
from host_tools.verify import receipt as rcmod
from host_tools.verify import tariff as tariffmod
from host_tools.verify import units


class Invalid(Exception):
    def __init__(self, reason, detail):
        Exception.__init__(self, "%s: %s" % (reason, detail))
        self.reason = reason


def read_pubkey(value):
    """SPKI DER from hex text or a file holding hex or DER (the one reader of key arguments:
    the CLI's enroll uses it too); raises ValueError."""
    if os.path.exists(value):
        with open(value, "rb") as f:
            raw = f.read()
        try:
            return bytes.fromhex(raw.decode("ascii").strip())
        except (UnicodeError, ValueError):
            return raw
    return bytes.fromhex(value.strip())


def _b64_list(items):
    return [h if isinstance(h, bytes) else base64.b64decode(h, validate=True) for h in items]


def check(bundle_text, pub_der, checkpoint_note=None, proof=None, tariff_doc=None, consistency=None,
          witnesses=(), quorum=0):
    """Return a one-line summary if the receipt is valid; raise Invalid(reason, detail).
    witnesses: cosignature.Witness objects the caller trusts; quorum: how many of them must have
    cosigned the checkpoint (0: cosignatures are not required)."""
    try:
        bundle = rcmod.read_bundle(bundle_text)
        note = checkpoint_note if checkpoint_note is not None else bundle["checkpoint"]
        if proof is None:
            proof = {k: bundle[k] for k in ("index", "tree_size", "inclusion_proof")}
        else:       # a validator's proof file: hashes in base64
            proof = {"index": proof["index"], "tree_size": proof["tree_size"],
                     "inclusion_proof": _b64_list(proof["inclusion_proof"])}
        if consistency is not None:
            consistency = {"old_size": consistency["old_size"], "new_size": consistency["new_size"],
                           "proof": _b64_list(consistency["proof"])}
        tariff_doc = tariff_doc if tariff_doc is not None else bundle["tariff"]
        record = bundle["receipt"]
        cosig_lines = [str(line) for line in bundle.get("cosignatures", [])]
    except (rcmod.ReceiptError, KeyError, TypeError, ValueError) as exc:
        raise Invalid("malformed-bundle", str(exc))
    if not sigcheck.valid_public_key(pub_der):
        raise Invalid("bad-public-key", "not a P-256 SubjectPublicKeyInfo")

    # 1. The checkpoint: signed by this charger's key.
    try:
        cp = cpmod.parse(note)
    except (cpmod.CheckpointError, UnicodeError) as exc:
        raise Invalid("malformed-checkpoint", str(exc))
    try:
        cp.verify(pub_der)
    except cpmod.WrongKey as exc:
        raise Invalid("wrong-key", str(exc))
    except cpmod.BadSignature as exc:
        raise Invalid("bad-checkpoint-signature", str(exc))
    if checkpoint_note is not None and bundle.get("checkpoint") not in (None, checkpoint_note):
        _check_history(bundle["checkpoint"], cp, pub_der, consistency)
    # the bundle's cosignatures are for the bundle's checkpoint; a replacement brings its own lines
    witnessed = _check_cosignatures(note, cosig_lines if checkpoint_note is None else [], witnesses, quorum)

    # 2. The receipt: signed by the same key, and a leaf of the log the checkpoint commits to.
    try:
        rc = rcmod.parse(record)
    except rcmod.ReceiptError as exc:
        raise Invalid("malformed-receipt", str(exc))
    if not rc.verify(pub_der):
        raise Invalid("bad-receipt-signature", "receipt signature does not verify with this key")
    if proof["tree_size"] != cp.size or proof["index"] != rc["index"]:
        raise Invalid("not-included", "proof is for leaf %s of %s, need leaf %d of %d"
                      % (proof["index"], proof["tree_size"], rc["index"], cp.size))
    try:
        merkle.verify_inclusion(merkle.leaf_hash(rc.record), rc["index"], cp.size,
                                proof["inclusion_proof"], cp.root)
    except merkle.ProofError as exc:
        raise Invalid("not-included", str(exc))

    # 3. The OCMF record inside: a valid OCMF signature and the same session.
    try:
        rec = rc.ocmf_record()
        rec.begin_end()
    except ocmf.OcmfError as exc:
        raise Invalid("malformed-ocmf", str(exc))
    if not rec.verify(pub_der):
        raise Invalid("bad-ocmf-signature", "OCMF signature does not verify with this key")
    try:
        rc.check_against_ocmf(rec)
    except rcmod.Mismatch as exc:
        raise Invalid(exc.reason, str(exc))

    # 4. The price: the tariff is the one named, and it gives the same amount.
    try:
        tar = tariffmod.Tariff(tariff_doc)
    except (tariffmod.TariffError, KeyError, TypeError, ValueError) as exc:
        raise Invalid("bad-tariff", str(exc))
    if tar.hash != rc["tariff"]:
        raise Invalid("tariff-hash-mismatch", "receipt names tariff %s, given %s" % (rc["tariff"], tar.hash))
    if tar.currency != rc["currency"]:
        raise Invalid("price-mismatch", "currency %s is not the tariff's %s" % (rc["currency"], tar.currency))
    try:
        expected = tar.price(rc["segments"], rc["begin"], rc["charge_end"], rc["end"])
    except tariffmod.TariffError as exc:
        raise Invalid("price-mismatch", "segments do not fit the tariff: %s" % exc)
    wrong = units.price_mismatch((rc["net"], rc["tax"], rc["price"]), expected)
    if wrong:
        raise Invalid("price-mismatch", wrong)
    return ("receipt %d (session T%d) of %s%s: %s kWh, %s incl. tax, leaf %d of %d in %s%s"
            % (rc["index"], rc["seq"], rc["charger"], identification(rec.payload),
               units.kwh_text(rc["energy_wh"]),
               units.money_text(rc["price"], rc["currency"]), rc["index"], cp.size, cp.origin,
               ", cosigned by %s" % ", ".join(sorted(witnessed)) if witnessed else ""))


def _check_cosignatures(note, lines, witnesses, quorum):
    """The trusted witnesses that validly cosigned the checkpoint; Invalid below the quorum."""
    if not witnesses and not quorum:
        return {}
    if quorum > len(witnesses):
        raise Invalid("missing-cosignatures", "quorum %d is more than the %d witness key(s) given"
                      % (quorum, len(witnesses)))
    try:
        return cosig.verify_quorum(cosig.add_lines(note, lines), witnesses, quorum)
    except cosig.QuorumError as exc:
        raise Invalid("missing-cosignatures", str(exc))
    except cosig.CosignatureError as exc:
        raise Invalid("bad-cosignature", str(exc))


def read_witness(value):
    """A cosignature.Witness from a vkey string or a file holding one."""
    text = open(value, encoding="utf-8").read() if os.path.exists(value) else value
    try:
        return cosig.parse_vkey(text)
    except cosig.CosignatureError as exc:
        raise Invalid("bad-witness-key", str(exc))


def _check_history(old_note, cp, pub_der, consistency):
    """The bundle's own checkpoint and the one given must belong to one append-only log."""
    try:
        old = cpmod.parse(old_note)
        old.verify(pub_der)
    except cpmod.WrongKey as exc:
        raise Invalid("wrong-key", "bundle checkpoint: %s" % exc)
    except cpmod.BadSignature as exc:
        raise Invalid("bad-checkpoint-signature", "bundle checkpoint: %s" % exc)
    except (cpmod.CheckpointError, UnicodeError) as exc:
        raise Invalid("malformed-checkpoint", "bundle checkpoint: %s" % exc)
    if consistency is None:
        if old.size == cp.size and old.root != cp.root:
            raise Invalid("inconsistent-checkpoints", "two signed roots for tree size %d: the log "
                          "was rewritten (the pair is the proof)" % cp.size)
        return
    if (consistency["old_size"], consistency["new_size"]) != tuple(sorted((old.size, cp.size))):
        raise Invalid("inconsistent-checkpoints", "consistency proof is for sizes %d..%d, checkpoints "
                      "have %d and %d" % (consistency["old_size"], consistency["new_size"], old.size, cp.size))
    try:
        cpmod.check_extends(old, cp, consistency["proof"], pub_der)
    except cpmod.CheckpointError as exc:
        raise Invalid("inconsistent-checkpoints", str(exc))


def identification(payload):
    """Who charged, as the driver looks for it: ", card <pseudonym>" for a card (OCMF IT LOCAL:
    the charger's keyed pseudonym of the card, docs/security.md "Card privacy"; the operator
    tells each driver theirs), ", id <ID> (<IT>)" for another identifier, "" for none.
    web/static/verify.js prints the same."""
    ident, kind = payload.get("ID"), payload.get("IT")
    if not ident:
        return ""
    if kind == "LOCAL":
        return ", card %s" % ident
    return ", id %s (%s)" % (ident, kind)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m host_tools.lightclient", description=__doc__.split("\n\n")[0])
    ap.add_argument("--receipt", required=True, help="receipt bundle JSON file")
    ap.add_argument("--pubkey", required=True, help="charger public key: SPKI DER hex, or a file")
    ap.add_argument("--checkpoint", help="checkpoint note file (default: the bundle's)")
    ap.add_argument("--proof", help="inclusion proof JSON for that checkpoint's size")
    ap.add_argument("--tariff", help="tariff document JSON (default: the bundle's)")
    ap.add_argument("--consistency", help="RFC 9162 consistency proof JSON: --checkpoint extends the bundle's")
    ap.add_argument("--witness", action="append", default=[],
                    help="a trusted witness's C2SP vkey (or a file holding it); repeat for several")
    ap.add_argument("--quorum", type=int, default=None,
                    help="cosignatures from this many distinct --witness keys are required "
                         "(default: all given witnesses)")
    args = ap.parse_args(argv)
    try:
        try:
            bundle = open(args.receipt, encoding="utf-8").read()
            pub = read_pubkey(args.pubkey)
        except ValueError as exc:
            raise Invalid("bad-public-key", str(exc))
        note = open(args.checkpoint, encoding="utf-8").read() if args.checkpoint else None
        proof = json.load(open(args.proof)) if args.proof else None
        tariff_doc = json.load(open(args.tariff)) if args.tariff else None
        consistency = json.load(open(args.consistency)) if args.consistency else None
        witnesses = [read_witness(w) for w in args.witness]
        quorum = len(witnesses) if args.quorum is None else args.quorum
        if quorum < 0:
            raise Invalid("missing-cosignatures", "quorum must be >= 0")
        summary = check(bundle, pub, note, proof, tariff_doc, consistency, witnesses, quorum)
    except Invalid as exc:
        print("INVALID: %s" % exc)
        return 1
    except OSError as exc:
        print("INVALID: unreadable-input: %s" % exc)
        return 1
    print("VALID: %s" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
