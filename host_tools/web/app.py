"""The web application of `chargeproof serve`: the proof API (host_tools.validator.proofserver),
the driver's check (static/verify.html, verifies in the browser, trusts no server) and the
operator's dashboard (host_tools.web.dashboard), on Flask; served by werkzeug's threaded server."""
import ipaddress
import logging
import pathlib

from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server as werkzeug_server

STATIC = pathlib.Path(__file__).parent / "static"


def create_app(db_path, secret=None, operator_key=None, peers=()):
    """operator_key: when set, the dashboard needs it once (/login?key=...) per browser; the
    proof API and the driver's check stay public."""
    from host_tools.validator import proofserver
    from host_tools.web import dashboard
    app = Flask(__name__, static_folder=str(STATIC), static_url_path="/static")
    app.config["JSON_SORT_KEYS"] = False
    proofs = proofserver.install(app, db_path, secret)
    dashboard.install(app, proofs, operator_key=operator_key, peers=peers)

    @app.get("/verify.html")
    def verify_page():
        return send_from_directory(STATIC, "verify.html")

    @app.get("/verify.js")
    def verify_js():
        return send_from_directory(STATIC, "verify.js")

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        if request.accept_mimetypes.accept_html and not request.accept_mimetypes.accept_json:
            return exc
        return jsonify(error=exc.description or exc.name), exc.code
    return app


def is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_server(db_path, host="127.0.0.1", port=0, secret=None, operator_key=None, peers=()):
    """A threaded HTTP server (not yet serving); port 0 picks a free one (server.server_port)."""
    app = create_app(db_path, secret, operator_key, peers)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)     # no line per request
    server = werkzeug_server(host, port, app, threaded=True)
    server.daemon_threads = True
    server.app = app
    server.service = app.extensions["chargeproof.proofs"]
    return server
