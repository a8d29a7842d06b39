"""`chargeproof`: the command line of a ChargeProof validator and its ledger.

  chargeproof validate --db L.sqlite --broker HOST --port N --id val-1 [--tariff T.json ...]
                       [--worker w1 --cosign-key V.key --peer VKEY ... --verify-procs N --batch N]
  chargeproof enroll   --db L.sqlite --charger cp-001 --pubkey HEX_OR_FILE [--origin O]
                       [--id val-1 --grant-out G.json]      also makes the charger's ack key
  chargeproof ack-key  --db L.sqlite --id val-1 --charger cp-001 show|rotate|activate [--grant-out G.json]
  chargeproof tariff   --db L.sqlite --file T.json          publish a tariff document
  chargeproof chargers --db L.sqlite
  chargeproof sessions --db L.sqlite [--charger cp-001]
  chargeproof evidence --db L.sqlite                         rejections and misbehaviour
  chargeproof proof    --db L.sqlite --charger cp-001 --seq N [--old-size M] [--out B.json]
  chargeproof serve    --db L.sqlite [--host H] [--port 8080] [--peer L2.sqlite]
                                         proofs for light clients, the operator's dashboard and
                                         the driver's in-browser check (verify.html), HTTP
  chargeproof token    --db L.sqlite --charger cp-001 --seq N   the receipt's proof token (for the driver)
  chargeproof verify   --receipt B.json ...                  the light client (offline)
  chargeproof export   --db L.sqlite --format json|transparency-xml [--out FILE]
  chargeproof replay   --db NEW.sqlite --export L.json [--enroll-from-export]   rebuild + audit
  chargeproof witness-key --key V.key --id val-1              make/show a validator's cosigning key (vkey)
  chargeproof pseudonym --key-file K --uid 04A1B2C3D4 ...    the pseudonym receipts and allow-lists
                                         carry for a card (docs/security.md, "Card privacy");
                                         --ocpp: its OCPP 1.6 idTag (first 20 digits)
  chargeproof ota publish|serve|status|withdraw ...          signed updates over MQTT (host_tools/operate/ota_server.py)

--db takes a SQLite file or a PostgreSQL conninfo/URL ("host=/run/postgresql dbname=ledger",
"postgresql://user@host/ledger"): the same commands work on either store.

Exit status: 0 success, 1 a check failed (verify, replay), 2 bad usage or input.
"""
import argparse
import functools
import json
import os
import sys

from host_tools.lightclient.check import read_pubkey
from host_tools.validator import export as export_mod
from host_tools.verify import units
from host_tools.validator.store import LedgerError, open_ledger


def _read_key(value):
    """A public key given as hex on the command line, or a file holding hex or DER."""
    try:
        return read_pubkey(value)
    except ValueError:
        raise LedgerError("--pubkey is neither hex nor a readable file: %r" % value[:40])


def _open(args):
    return open_ledger(args.db)


def _out(args, text):
    if getattr(args, "out", None) and args.out != "-":
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def cmd_validate(args):
    from host_tools.validator.service import Validator
    tariffs = []
    for path in args.tariff or ():
        with open(path, encoding="utf-8") as f:
            tariffs.append(f.read())
    from host_tools import mqtt_conn
    spec = mqtt_conn.spec_from_args(args)
    if args.worker or args.cosign_key or args.peer or args.verify_procs:
        # one worker of a validator network: shared subscription, group commit, witnessing
        from host_tools.validator import witness
        from host_tools.validator.workers import Worker
        from host_tools.verify import cosignature
        cosigner = witness.load_cosigner(args.cosign_key, args.id) if args.cosign_key else None
        peers = [cosignature.parse_vkey(open(p).read() if os.path.exists(p) else p) for p in args.peer]
        v = Worker(args.db, args.id, args.worker or "w0", cosigner=cosigner, peers=peers,
                   verify_procs=args.verify_procs, batch_size=args.batch, tariffs=tariffs,
                   backend=args.backend, skew_s=args.skew, broker=spec,
                   operator_key=_operator_key(args.operator_key))
    else:
        v = Validator(args.db, args.id, tariffs=tariffs, backend=args.backend, skew_s=args.skew,
                      broker=spec, operator_key=_operator_key(args.operator_key))

    def report(result):
        if result.status not in ("accepted", "duplicate") or args.verbose:
            print("%s %s %s %s %s" % (result.kind, result.charger_id, result.status, result.reason,
                                      result.detail), flush=True)
    v.on_result = report
    print("validator %s: ledger %s, broker %s:%d%s%s" % (
        args.id, args.db, spec.host, spec.port, " as " + spec.username if spec.username else "",
        " (TLS)" if spec.uses_tls else ""), flush=True)
    try:
        v.run()
    except KeyboardInterrupt:
        pass
    finally:
        v.close()
    return 0


def cmd_enroll(args):
    from host_tools.verify import sigcheck
    pub = _read_key(args.pubkey)
    if not sigcheck.valid_public_key(pub):
        raise LedgerError("not a P-256 SubjectPublicKeyInfo (DER): %s..." % pub.hex()[:40])
    from host_tools.validator.acks import AckKeys
    if args.grant_out and not args.id:
        raise LedgerError("--grant-out needs --id (the validator the ack key belongs to)")
    with _open(args) as db:
        kid = db.enroll(args.charger, pub, origin=args.origin)
        keys = AckKeys(db)
        ack_kid, _ = keys.ensure(args.charger)
        if args.grant_out:
            _write_grant(args.grant_out, keys.provisioning(args.id, args.charger))
    print("enrolled %s key id %s, ack key id %s" % (args.charger, kid, ack_kid))
    return 0


def _write_grant(path, grant):
    """The ack key(s) for the charger's secrets file (host_tools/provision/secrets.py): a secret,
    written with mode 0600."""
    from host_tools.provision import secrets
    secrets.write(path, grant)
    print("ack key grant for %s (keys %s) written to %s: provision it, then delete it"
          % (grant["charger"], " ".join(sorted(grant["ack_keys"])), path))


def cmd_ack_key(args):
    from host_tools.validator.acks import AckKeys
    with _open(args) as db:
        if db.charger(args.charger) is None:
            raise LedgerError("charger %s is not enrolled" % args.charger)
        keys = AckKeys(db)
        if args.action == "rotate":
            kid, _ = keys.rotate(args.charger)
            print("next ack key %s made; provision current + next, then `activate`" % kid)
        elif args.action == "activate":
            kid, _ = keys.activate(args.charger)
            print("acks are now made with key %s; provision it alone to retire the old one" % kid)
        grant = keys.provisioning(args.id, args.charger)
        cur, nxt = keys.current(args.charger), keys.pending(args.charger)
        print("charger %s: current ack key %s, next %s" % (args.charger, cur[0] if cur else "-",
                                                           nxt[0] if nxt else "-"))
        if args.grant_out:
            _write_grant(args.grant_out, grant)
    return 0


def _operator_key(value):
    """The operator's public key (SPKI DER) from hex, a file holding hex, or a PEM key file."""
    if not value:
        return None
    if os.path.exists(value):
        with open(value, "rb") as f:
            data = f.read()
        if b"-----BEGIN" in data:
            from cryptography.hazmat.primitives import serialization
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError:
                key = serialization.load_pem_private_key(data, password=None).public_key()
            return key.public_bytes(serialization.Encoding.DER,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        value = data.decode("ascii").strip()
    return bytes.fromhex(value)


def cmd_tariff(args):
    from host_tools.verify import formats
    if args.action in ("publish", "show"):
        from host_tools import mqtt_conn
        from host_tools.provision import tariff_doc
        spec = mqtt_conn.spec_from_args(args)
        try:
            if args.action == "publish":
                if not args.file or not args.key:
                    raise ValueError("tariff publish needs --file and --key")
                print(tariff_doc.to_json(tariff_doc.main_publish(args.file, args.key, spec, args.dry_run)))
            else:
                key = _operator_key(args.operator_key)
                print(tariff_doc.to_json(tariff_doc.main_show(spec, args.id, key.hex() if key else None)))
        except tariff_doc.TariffDocError as exc:
            print("chargeproof tariff %s: %s" % (args.action, exc), file=sys.stderr)
            return 2
        return 0
    if not args.db or not args.file:
        print("chargeproof tariff: --db and --file are needed to add a tariff to a ledger", file=sys.stderr)
        return 2
    with open(args.file, encoding="utf-8") as f:
        text, h = formats.tariff_canonical(f.read())
    with _open(args) as db:
        db.add_tariff(h, text)
    print("published tariff %s" % h)
    return 0


def _table(rows, columns):
    widths = [max([len(c)] + [len(str(r[i])) for r in rows]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for r in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())
    return "\n".join(lines) + "\n"


def cmd_chargers(args):
    with _open(args) as db:
        rows = [(c["charger_id"], c["key_id_hex"], c["origin"], c["receipts"],
                 c["checkpoint_size"] if c["checkpoint_size"] is not None else "-")
                for c in db.chargers()]
    sys.stdout.write(_table(rows, ("charger", "key id", "origin", "receipts", "checkpoint")))
    return 0


def cmd_sessions(args):
    with _open(args) as db:
        rows = [(r["charger_id"], r["seq"], r["log_index"], units.kwh_text(r["energy_wh"]),
                 units.money_text(r["price_minor"], r["currency"]), r["status"], r["note"])
                for r in db.sessions(args.charger)]
        totals = db.totals()
    sys.stdout.write(_table(rows, ("charger", "seq", "index", "kWh", "price", "status", "note")))
    for t in totals:
        print("total %s: %d sessions, %s kWh, %s" % (t["charger_id"], t["sessions"], units.kwh_text(t["energy_wh"]),
                                                     units.money_text(t["price_minor"], t["currency"])))
    return 0


def cmd_evidence(args):
    with _open(args) as db:
        rej = [(r["id"], r["charger_id"] or "-", r["kind"], r["reason"], r["detail"]) for r in db.rejections()]
        ev = [(e["id"], e["charger_id"] or "-", e["kind"], e["detail"]) for e in db.evidence()]
    print("rejections:")
    sys.stdout.write(_table(rej, ("id", "charger", "kind", "reason", "detail")))
    print("evidence:")
    sys.stdout.write(_table(ev, ("id", "charger", "kind", "detail")))
    return 0


def cmd_proof(args):
    from host_tools.validator.service import proof_bundle
    with _open(args) as db:
        bundle = proof_bundle(db, args.charger, seq=args.seq, index=args.index, old_size=args.old_size)
    _out(args, json.dumps(bundle, indent=2, sort_keys=True) + "\n")
    return 0


def cmd_serve(args):
    import secrets
    from host_tools.validator.proofserver import make_server
    from host_tools.web.app import is_loopback
    # Beyond this machine the dashboard (which lists every session) needs the operator's key.
    key = None if is_loopback(args.host) and not args.require_login else secrets.token_urlsafe(24)
    server = make_server(args.db, args.host, args.port, operator_key=key, peers=args.peer or ())
    base = "http://%s:%d" % (args.host, server.server_port)
    print("proofs for light clients on %s/ (ledger %s)" % (base, args.db), flush=True)
    print("operator's dashboard: %s/%s" % (base, "login?key=" + key if key else ""), flush=True)
    print("driver's check: %s/verify.html" % base, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_token(args):
    from host_tools.validator.proofserver import ProofService, load_secret
    with _open(args) as db:
        token = ProofService(db, load_secret(args.db)).token_for(args.charger, seq=args.seq)
    print(token)
    return 0


def cmd_replay(args):
    from host_tools.validator.replay import replay
    from host_tools.validator.service import Validator
    from host_tools.validator.replay import check_export
    from host_tools.verify import strictjson
    with open(args.export, "rb") as f:
        doc = strictjson.loads(f.read(), max_depth=16)      # another party's file: bounded
    check_export(doc)
    v = Validator(args.db, args.id)
    try:
        report = replay(v, doc, enroll_from_export=args.enroll_from_export)
    finally:
        v.close()
    for cid, kid in report["enrolled"]:
        print("enrolled %s with key id %s FROM THE EXPORT: compare it with the provisioning record" % (cid, kid))
    print("replayed %d receipts and %d checkpoints" % (report["receipts"], report["checkpoints"]))
    for d in report["disagreements"]:
        print("DISAGREE %s %s %s: export says %s, this validator %s %s" % d)
    if report["disagreements"]:
        return 1
    print("this validator agrees with the export on every record")
    return 0


def cmd_export(args):
    with _open(args) as db:
        if args.format == "json":
            text = json.dumps(export_mod.export_json(db), indent=2, sort_keys=True) + "\n"
        else:
            text = export_mod.export_transparency_xml(db, charger_id=args.charger)
    _out(args, text)
    return 0


def cmd_witness_key(args):
    from host_tools.validator import witness
    signer = witness.load_cosigner(args.key, args.id)
    print(signer.vkey())
    return 0


def cmd_pseudonym(args):
    from host_tools.provision import pseudonym
    key = pseudonym.read_key(args.key_file)
    for uid in args.uid:
        # Only the pseudonym is printed when asked for one card: it goes into allow-lists and
        # to the driver as it is; with several, each line says which card it is for.
        p = pseudonym.pseudonym(key, uid)
        if args.ocpp:                   # the idTag to register in a CSMS (OCPP 1.6 bridge)
            p = pseudonym.ocpp_id_tag(p)
        print(p if len(args.uid) == 1 else "%s %s" % (pseudonym.canonical_uid(uid), p))
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="chargeproof", description="ChargeProof validator and ledger tools")
    sub = p.add_subparsers(dest="command", required=True)

    def with_db(sp):
        sp.add_argument("--db", required=True,
                        help="the validator's ledger: a SQLite file or a PostgreSQL conninfo/URL")
        return sp

    sp = with_db(sub.add_parser("validate", help="run the validator service on an MQTT broker"))
    from host_tools import mqtt_conn
    mqtt_conn.add_arguments(sp)
    sp.add_argument("--id", required=True, help="this validator's id (its ack topic level)")
    sp.add_argument("--tariff", action="append", help="tariff document to publish (repeatable)")
    sp.add_argument("--operator-key", help="operator public key (hex, hex file or PEM): accept the "
                                           "tariffs it signed on tariff/<id>")
    sp.add_argument("--backend", default="fast", choices=("fast", "reference", "both"),
                    help="signature backend: cryptography, python-ecdsa, or both (must agree)")
    sp.add_argument("--skew", type=int, default=300,
                    help="seconds a charger's clock may run ahead of ours (default 300)")
    sp.add_argument("--worker", help="run as this worker of a validator network (several workers of "
                                      "one --id share the load and one PostgreSQL --db)")
    sp.add_argument("--cosign-key", help="cosign accepted checkpoints with this Ed25519 key file "
                                         "(chargeproof witness-key makes it)")
    sp.add_argument("--peer", action="append", default=[],
                    help="another validator's cosigner vkey (or a file): read its cosigned checkpoints")
    sp.add_argument("--verify-procs", type=int, default=0, help="processes checking signatures in parallel")
    sp.add_argument("--batch", type=int, default=128, help="messages per group commit (workers)")
    sp.add_argument("-v", "--verbose", action="store_true")
    sp.set_defaults(fn=cmd_validate)

    sp = with_db(sub.add_parser("enroll", help="enroll a charger and its public key"))
    sp.add_argument("--charger", required=True)
    sp.add_argument("--pubkey", required=True, help="SPKI DER as hex, or a file with hex or DER")
    sp.add_argument("--origin", help="checkpoint origin line (default: chargeproof.local/<charger>, the firmware's)")
    sp.add_argument("--id", help="this validator's id (names the ack key in the grant)")
    sp.add_argument("--grant-out", help="write the charger's ack key grant here (for provisioning)")
    sp.set_defaults(fn=cmd_enroll)

    sp = with_db(sub.add_parser("ack-key", help="show, rotate or activate a charger's ack key"))
    sp.add_argument("action", choices=("show", "rotate", "activate"))
    sp.add_argument("--id", required=True, help="this validator's id")
    sp.add_argument("--charger", required=True)
    sp.add_argument("--grant-out", help="write the grant (current and next key) for provisioning")
    sp.set_defaults(fn=cmd_ack_key)

    sp = sub.add_parser("tariff", help="publish a signed tariff to the fleet (retained), show the "
                                        "published ones, or add a document to one ledger by hand")
    sp.add_argument("action", nargs="?", default="add", choices=("add", "publish", "show"),
                    help="add (default): into --db only; publish: sign with --key and publish "
                         "retained on tariff/<id>; show: the retained tariffs on the broker")
    sp.add_argument("--db", help="the validator's ledger (add)")
    sp.add_argument("--file", help="the tariff document (JSON)")
    sp.add_argument("--key", help="the operator's private key, PEM (publish)")
    sp.add_argument("--dry-run", action="store_true", help="check and sign, do not publish")
    sp.add_argument("--id", help="only this tariff id (show)")
    sp.add_argument("--operator-key", help="operator public key (hex, hex file or PEM): show checks signatures")
    mqtt_conn.add_arguments(sp)
    sp.set_defaults(fn=cmd_tariff)

    sp = with_db(sub.add_parser("chargers", help="list enrolled chargers"))
    sp.set_defaults(fn=cmd_chargers)

    sp = with_db(sub.add_parser("sessions", help="list sessions (receipts)"))
    sp.add_argument("--charger")
    sp.set_defaults(fn=cmd_sessions)

    sp = with_db(sub.add_parser("evidence", help="list rejections and evidence of misbehaviour"))
    sp.set_defaults(fn=cmd_evidence)

    sp = with_db(sub.add_parser("proof", help="write the light-client bundle of one receipt"))
    sp.add_argument("--charger", required=True)
    g = sp.add_mutually_exclusive_group(required=True)
    g.add_argument("--seq", type=int, help="the charger's session sequence number")
    g.add_argument("--index", type=int, help="the log index")
    sp.add_argument("--old-size", type=int, help="also prove consistency from this checkpoint size")
    sp.add_argument("--out", help="output file (default stdout)")
    sp.set_defaults(fn=cmd_proof)

    sp = with_db(sub.add_parser("serve", help="serve proofs to light clients over HTTP (read-only)"))
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8080)
    sp.add_argument("--peer", action="append", help="another validator's ledger, for the agreement column")
    sp.add_argument("--require-login", action="store_true",
                    help="dashboard needs the printed login link even on loopback")
    sp.set_defaults(fn=cmd_serve)

    sp = with_db(sub.add_parser("token", help="the proof token of one receipt (GET /proof/<token>)"))
    sp.add_argument("--charger", required=True)
    sp.add_argument("--seq", type=int, required=True)
    sp.set_defaults(fn=cmd_token)

    sp = sub.add_parser("verify", help="light-client check of a receipt bundle (offline)", add_help=False)
    sp.set_defaults(fn=None)

    sp = with_db(sub.add_parser("replay", help="rebuild/audit a ledger from another validator's JSON export"))
    sp.add_argument("--export", required=True, help="a `chargeproof export --format json` file")
    sp.add_argument("--id", default="replay", help="this validator's id")
    sp.add_argument("--enroll-from-export", action="store_true",
                    help="take charger keys from the export (default: they must be enrolled here)")
    sp.set_defaults(fn=cmd_replay)

    sp = with_db(sub.add_parser("export", help="export the ledger"))
    sp.add_argument("--format", required=True, choices=("json", "transparency-xml"))
    sp.add_argument("--charger", help="only this charger (transparency-xml)")
    sp.add_argument("--out", help="output file (default stdout)")
    sp.set_defaults(fn=cmd_export)

    sp = sub.add_parser("witness-key", help="make (on first use) and print a validator's cosigning key")
    sp.add_argument("--key", required=True, help="key file (Ed25519 seed, hex; made with mode 0600)")
    sp.add_argument("--id", required=True, help="the validator id (the cosigner's key name)")
    sp.set_defaults(fn=cmd_witness_key)

    sp = sub.add_parser("pseudonym", help="the pseudonym a card's receipts and allow-list entries carry")
    sp.add_argument("--key-file", required=True,
                    help="the operator's pseudonym key (hex; or a charger's secrets file)")
    sp.add_argument("--uid", required=True, action="append",
                    help="the card's UID in hex, as a reader prints it (repeatable)")
    sp.add_argument("--ocpp", action="store_true",
                    help="print the card's OCPP 1.6 idTag instead (the pseudonym's first 20 "
                    "digits), to register it in a CSMS")
    sp.set_defaults(fn=cmd_pseudonym)
    return p


@functools.lru_cache(maxsize=1)
def _parser():
    # Built once per process: building it costs ~40 ms (argparse looks up translations on
    # disk for every help string), more than most commands' own work (make fuzz calls main()
    # once per input).
    return build_parser()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "verify":
        # The light client owns its options; pass them through untouched.
        from host_tools.lightclient import check as lightclient
        return lightclient.main(argv[1:])
    if argv and argv[0] == "ota":
        from host_tools.operate import ota_server
        return ota_server.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.fn(args)
    except (LedgerError, OSError, ValueError) as exc:
        print("chargeproof %s: %s" % (args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
