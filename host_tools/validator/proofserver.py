"""Proofs for light clients over HTTP: a read-only JSON view of one validator's ledger (Flask).

    chargeproof serve --db ledger.sqlite --port 8080     (beside `chargeproof validate`: SQLite's
                                                          WAL lets it read while the validator writes)
  GET /chargers                               [{"charger_id", "pubkey_hex", "key_id_hex", "origin",
                                                "receipts", "checkpoint_size"}]
  GET /checkpoint/<charger>                   the latest signed checkpoint note (text/plain)
  GET /proof/<token>[?old_size=M]             the light-client bundle (host_tools/verify/receipt.py
                                              format) of the receipt with that proof token, with
                                              the consistency proof from size M if asked
  GET /consistency/<charger>?old=M&new=N      {"old_size", "new_size", "proof": [base64...]}
                                              between two stored checkpoints (RFC 9162 §2.1.4)
Errors are JSON {"error": "..."} with 400 (bad request) or 404 (unknown charger/receipt/size).
Nothing here writes to the ledger.

Receipts cannot be enumerated: a bundle is addressed by its proof token, HMAC-SHA256 of the
receipt's leaf hash under this server's secret (`ProofTokens`), 128 bits, which the operator
hands to the driver with the bill (the dashboard's QR code, `chargeproof token`). Charger and
seq counters, or the leaf hash itself (inclusion and consistency proofs reveal other receipts'
leaf hashes), would let anyone walk every driver's bills.
"""
import base64
import hashlib
import hmac
import os
import secrets
import threading

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from host_tools.verify import merkle
from host_tools.validator.store import LedgerError, open_ledger
from host_tools.validator.service import proof_bundle

TOKEN_BYTES = 16


class NotFound(LookupError):
    pass


def secret_path(db_path):
    return str(db_path) + ".web-secret"


def load_secret(db_path):
    """This server's secret (32 random bytes, hex in a 0600 file beside the ledger), made once."""
    path = secret_path(db_path)
    try:
        with open(path, encoding="ascii") as f:
            return bytes.fromhex(f.read().strip())
    except FileNotFoundError:
        pass
    value = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value.hex() + "\n")
    return value


class ProofTokens:
    """Proof token of a receipt: HMAC-SHA256(secret, charger id, leaf hash)[:16], hex."""

    def __init__(self, secret: bytes):
        self.key = hashlib.sha256(b"chargeproof proof token/1\x00" + secret).digest()

    def token(self, charger_id: str, leaf_hash: bytes) -> str:
        msg = charger_id.encode("utf-8") + b"\x00" + bytes(leaf_hash)
        return hmac.new(self.key, msg, hashlib.sha256).digest()[:TOKEN_BYTES].hex()


class _Trees:
    """Each charger's Merkle tree and token index, brought up to date from the ledger on every
    use (only the leaves appended since the last request are read)."""

    def __init__(self, db, tokens):
        self.db = db
        self.tokens = tokens
        self.trees = {}
        self.by_token = {}          # token -> (charger id, log index)
        self.lock = threading.Lock()

    def get(self, charger_id):
        with self.lock:
            tree = self.trees.setdefault(charger_id, merkle.Tree())
            for h in self.db.leaf_hashes(charger_id, start=tree.size):
                self.by_token[self.tokens.token(charger_id, h)] = (charger_id, tree.size)
                tree.append_hash(h)
            return tree

    def find(self, token):
        for c in self.db.chargers():
            self.get(c["charger_id"])
        with self.lock:
            return self.by_token.get(token)


class ProofService:
    def __init__(self, db, secret=None):
        self.db = db
        # A PostgreSQL ledger has no file: its server's secret lives in the working directory.
        where = getattr(db, "path", None) or "chargeproof-proofs"
        self.tokens = ProofTokens(secret if secret is not None else load_secret(where))
        self.trees = _Trees(db, self.tokens)

    def chargers(self):
        return [{k: c[k] for k in ("charger_id", "pubkey_hex", "key_id_hex", "origin", "receipts",
                                   "checkpoint_size")} for c in self.db.chargers()]

    def _charger(self, charger_id):
        if self.db.charger(charger_id) is None:
            raise NotFound("unknown charger %s" % charger_id)

    def checkpoint(self, charger_id):
        self._charger(charger_id)
        cp = self.db.latest_checkpoint(charger_id)
        if cp is None:
            raise NotFound("no checkpoint from %s yet" % charger_id)
        return cp["note"].decode("utf-8")

    def token_for(self, charger_id, seq=None, index=None):
        """The proof token of one receipt (for the operator, who hands it to the driver)."""
        row = self.db.receipt_by_seq(charger_id, seq) if index is None else self.db.receipt_at(charger_id, index)
        if row is None:
            raise NotFound("no such receipt of %s" % charger_id)
        return self.tokens.token(charger_id, row["leaf_hash"])

    def proof(self, token, old_size=None):
        if not (isinstance(token, str) and len(token) == 2 * TOKEN_BYTES
                and all(c in "0123456789abcdef" for c in token)):
            raise ValueError("a proof token is %d lower-case hex digits" % (2 * TOKEN_BYTES))
        found = self.trees.find(token)
        if found is None:
            raise NotFound("no receipt with this token")
        charger_id, index = found
        try:
            return proof_bundle(self.db, charger_id, index=index, tree=self.trees.get(charger_id),
                                old_size=old_size)
        except LedgerError as exc:
            raise NotFound(str(exc))

    def consistency(self, charger_id, old, new):
        self._charger(charger_id)
        if not 0 < old <= new:
            raise ValueError("need 0 < old <= new")
        for size in (old, new):
            if self.db.checkpoint(charger_id, size) is None:
                raise NotFound("no checkpoint of size %d from %s" % (size, charger_id))
        tree = self.trees.get(charger_id)
        return {"old_size": old, "new_size": new,
                "proof": [base64.b64encode(h).decode() for h in tree.consistency_proof(old, new)]}


api = Blueprint("proofs", __name__)


def _service() -> ProofService:
    return current_app.extensions["chargeproof.proofs"]


def _int_arg(name, required=True):
    value = request.args.get(name)
    if value is None:
        if required:
            raise ValueError("missing query parameter %s" % name)
        return None
    return int(value)


@api.after_request
def _cors(resp):
    resp.headers["Access-Control-Allow-Origin"] = "*"       # browser light clients
    return resp


@api.errorhandler(NotFound)
def _not_found(exc):
    return jsonify(error=str(exc)), 404


@api.errorhandler(ValueError)
def _bad_request(exc):
    return jsonify(error="bad request: %s" % exc), 400


@api.get("/chargers")
def chargers():
    return jsonify(_service().chargers())


@api.get("/checkpoint/<charger_id>")
def checkpoint(charger_id):
    return Response(_service().checkpoint(charger_id), mimetype="text/plain")


@api.get("/proof/<token>")
def proof(token):
    return jsonify(_service().proof(token, _int_arg("old_size", required=False)))


@api.get("/consistency/<charger_id>")
def consistency(charger_id):
    return jsonify(_service().consistency(charger_id, _int_arg("old"), _int_arg("new")))


def install(app: Flask, db_path, secret=None) -> ProofService:
    """Mount the proof API on app, over a read-only view of the ledger at db_path."""
    service = ProofService(open_ledger(db_path), secret)
    app.extensions["chargeproof.proofs"] = service
    app.register_blueprint(api)
    return service


def make_server(db_path, host="127.0.0.1", port=0, **options):
    """An HTTP server (not yet serving) with the proof API, the dashboard and the driver's check
    (host_tools.web); port 0 picks a free one (server.server_port). serve_forever, shutdown and
    server_close as for http.server."""
    from host_tools.web.app import make_server as make_web_server
    return make_web_server(db_path, host, port, **options)
