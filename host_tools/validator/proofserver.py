"""Proofs for light clients over HTTP: a read-only JSON view of one validator's ledger.

    chargeproof serve --db ledger.sqlite --port 8080     (beside `chargeproof validate`: SQLite's
                                                          WAL lets it read while the validator writes)
  GET /chargers                               [{"charger_id", "pubkey_hex", "key_id_hex", "origin",
                                                "receipts", "checkpoint_size"}]
  GET /checkpoint/<charger>                   the latest signed checkpoint note (text/plain)
  GET /proof/<charger>/<seq>[?old_size=M]     the light-client bundle (host_tools/verify/receipt.py
                                              format) for the session with that seq, with the
                                              consistency proof from size M if asked
  GET /consistency/<charger>?old=M&new=N      {"old_size", "new_size", "proof": [base64...]}
                                              between two stored checkpoints (RFC 9162 §2.1.4)
Errors are JSON {"error": "..."} with 400 (bad request) or 404 (unknown charger/receipt/size).
Nothing here writes to the ledger.
"""
import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from host_tools.verify import merkle
from host_tools.validator.store import LedgerDB, LedgerError
from host_tools.validator.service import proof_bundle


class _Trees:
    """Each charger's Merkle tree, brought up to date from the ledger on every use (only the
    leaves appended since the last request are read)."""

    def __init__(self, db):
        self.db = db
        self.trees = {}
        self.lock = threading.Lock()

    def get(self, charger_id):
        with self.lock:
            tree = self.trees.setdefault(charger_id, merkle.Tree())
            for h in self.db.leaf_hashes(charger_id, start=tree.size):
                tree.append_hash(h)
            return tree


class NotFound(LookupError):
    pass


class ProofService:
    def __init__(self, db):
        self.db = db
        self.trees = _Trees(db)

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

    def proof(self, charger_id, seq, old_size=None):
        self._charger(charger_id)
        try:
            return proof_bundle(self.db, charger_id, seq=seq, tree=self.trees.get(charger_id), old_size=old_size)
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


def _handler(service):
    class Handler(BaseHTTPRequestHandler):
        server_version = "chargeproof-proofs/1"

        def log_message(self, fmt, *args):      # quiet: the caller decides what to log
            pass

        def _send(self, code, body, ctype="application/json"):
            data = body.encode("utf-8")
            self.send_response(code)
            self.send_header("Content-Type", ctype + "; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Access-Control-Allow-Origin", "*")    # browser light clients
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            try:
                if parts == ["chargers"]:
                    body = json.dumps(service.chargers())
                elif len(parts) == 2 and parts[0] == "checkpoint":
                    return self._send(200, service.checkpoint(parts[1]), "text/plain")
                elif len(parts) == 3 and parts[0] == "proof":
                    old = int(query["old_size"]) if "old_size" in query else None
                    body = json.dumps(service.proof(parts[1], int(parts[2]), old))
                elif len(parts) == 2 and parts[0] == "consistency":
                    body = json.dumps(service.consistency(parts[1], int(query["old"]), int(query["new"])))
                else:
                    raise NotFound("no such resource %s" % url.path)
            except NotFound as exc:
                return self._send(404, json.dumps({"error": str(exc)}))
            except (ValueError, KeyError) as exc:
                return self._send(400, json.dumps({"error": "bad request: %s" % exc}))
            self._send(200, body)

    return Handler


def make_server(db_path, host="127.0.0.1", port=0):
    """An HTTP server (not yet serving) on host:port; port 0 picks a free one (server.server_port)."""
    service = ProofService(LedgerDB(db_path))
    server = ThreadingHTTPServer((host, port), _handler(service))
    server.daemon_threads = True
    server.service = service
    return server
