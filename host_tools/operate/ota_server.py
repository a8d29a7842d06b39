"""The update server: publishes signed update manifests and answers the chargers' chunk requests
over MQTT (firmware/app/ota.py is the other side; docs/mqtt.md, "Updates").

    chargeproof ota publish --key operator.pem --version 1.3.0 --number 13 [--min-number 10] \\
        --dir build/mpy --package app [--charger CP-1] [broker options]
    chargeproof ota serve --manifest M.signed --dir build/mpy [broker options]
    chargeproof ota status [--charger CP-1 ...] [--want 1.3.0] [--timeout 600]
    chargeproof ota withdraw [--charger CP-1]

publish signs the manifest for the files under DIR (whole packages: --package app ... picks
them; default every package an update may replace), leaves it retained on `ota/manifest` (the
fleet) or `cp/<id>/ota/manifest` (one charger), and serves chunks until interrupted. serve does
the same for a manifest signed elsewhere (the operator key may live offline: `python -m
host_tools.provision.ota_manifest` signs it). status prints every charger's update status as it
changes; with --want it exits 0 once every charger named has confirmed that version, 1 on
timeout or when one reports an error. withdraw clears the retained manifest.

Log in as an operator: the broker's ACL lets only operators publish manifests and chunks.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from host_tools import mqtt_conn
from host_tools.provision import ota_manifest
from host_tools.verify import formats
from host_tools.verify.merkle import Tree

UPDATABLE = ("app", "uplink", "session", "ledger", "drivers", "hal")   # firmware/store/bootsel.py
MAX_REQUEST = 128                   # bytes: {"n": .., "f": .., "o": ..}


class UpdateError(ValueError):
    pass


@dataclass
class Update:
    """One signed update the server holds: the manifest as signed and the files it names."""
    raw: bytes
    manifest: dict[str, Any]
    files: list[bytes]
    trees: list[Tree] = field(default_factory=list)

    @classmethod
    def load(cls, raw: bytes, files: dict[str, bytes]) -> Update:
        """raw: <manifest JSON>|<sig>; files: path -> content, each checked against the manifest
        (the signature is the charger's to check: it holds the operator's public key)."""
        raw = raw.strip()
        try:
            m = json.loads(raw[:raw.rindex(b"|")])
            entries = m["files"]
            chunk = m["chunk"]
        except (ValueError, KeyError, TypeError) as exc:
            raise UpdateError("not a signed manifest: %s" % exc)
        data = []
        for e in entries:
            content = files.get(e["path"])
            if content is None:
                raise UpdateError("%s: named by the manifest, not in the files given" % e["path"])
            if hashlib.sha256(content).hexdigest() != e["sha256"] or len(content) != e["size"]:
                raise UpdateError("%s: differs from the manifest" % e["path"])
            data.append(content)
        trees = [ota_manifest.file_tree(d, chunk) for d in data]
        for e, t in zip(entries, trees):
            if t.root().hex() != e["root"]:
                raise UpdateError("%s: chunk root differs from the manifest" % e["path"])
        return cls(raw, m, data, trees)

    @property
    def number(self) -> int:
        return int(self.manifest["number"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def charger(self) -> str:
        return str(self.manifest["charger"])

    def chunk(self, index: int, offset: int) -> bytes:
        """The chunk message for (file index, offset); ValueError if there is no such chunk."""
        if not 0 <= index < len(self.files):
            raise ValueError("no file %d" % index)
        return ota_manifest.chunk_message(self.number, index, offset, self.files[index],
                                          self.trees[index], self.manifest["chunk"])


def parse_request(payload: bytes) -> tuple[int, int, int]:
    """(number, file index, offset) of a charger's chunk request; ValueError if malformed."""
    if len(payload) > MAX_REQUEST:
        raise ValueError("request longer than %d bytes" % MAX_REQUEST)
    obj = json.loads(payload)
    if not isinstance(obj, dict) or set(obj) != {"n", "f", "o"}:
        raise ValueError("a request is {\"n\", \"f\", \"o\"}")
    vals = (obj["n"], obj["f"], obj["o"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in vals):
        raise ValueError("n, f, o must be non-negative integers")
    return vals


class OtaServer:
    """Answers cp/+/ota/req with cp/<id>/ota/chunk for the updates it holds (QoS 0: a lost
    answer is asked for again). tamper (tests): a function (charger, message) -> message or None
    (dropped) applied to each answer before it is sent: a lossy or damaging network."""

    def __init__(self, spec: mqtt_conn.BrokerSpec, updates: list[Update] = (),
                 client_id: str = "", prefix: str = formats.PREFIX):
        self.spec = spec
        self.prefix = prefix
        self.updates = {u.number: u for u in updates}
        self.client_id = client_id or (spec.username or "ota-server")
        self.client: Any = None
        self.tamper: Callable[[str, bytes], bytes | None] | None = None
        self.lock = threading.Lock()
        self.served: dict[str, int] = {}        # charger -> chunks sent
        self.requests: list[tuple[str, int, int, int]] = []    # (charger, n, f, o) as asked
        self.refused = 0
        self.subscribed = threading.Event()

    def add(self, update: Update) -> None:
        with self.lock:
            self.updates[update.number] = update

    def start(self) -> OtaServer:
        c = mqtt_conn.connected(self.spec, self.client_id)
        c.on_message = self._on_message
        c.on_subscribe = lambda *a: self.subscribed.set()
        c.subscribe(formats.ota_filter("req", self.prefix), qos=0)
        self.client = c
        if not self.subscribed.wait(10):
            raise TimeoutError("no SUBACK for %s" % formats.ota_filter("req", self.prefix))
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()
            self.client = None

    def publish_manifest(self, update: Update) -> None:
        """Leave the signed manifest retained where its chargers read it."""
        topic = self.manifest_topic(update.charger)
        self.client.publish(topic, update.raw, qos=1, retain=True).wait_for_publish(10)

    def withdraw(self, charger: str = "*") -> None:
        self.client.publish(self.manifest_topic(charger), b"", qos=1, retain=True).wait_for_publish(10)

    def manifest_topic(self, charger: str) -> str:
        return formats.OTA_FLEET_MANIFEST if charger == "*" else \
            formats.ota_topic(charger, "manifest", self.prefix)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        route = formats.ota_route(msg.topic, self.prefix)
        if route is None or route[1] != "req":
            return
        charger = route[0]
        try:
            n, f, o = parse_request(bytes(msg.payload))
            with self.lock:
                update = self.updates.get(n)
                self.requests.append((charger, n, f, o))
            if update is None or update.charger not in ("*", charger):
                raise ValueError("no update %d for %s" % (n, charger))
            answer = update.chunk(f, o)
        except ValueError:
            with self.lock:
                self.refused += 1
            return
        if self.tamper is not None:
            answer = self.tamper(charger, answer)
            if answer is None:
                return
        with self.lock:
            self.served[charger] = self.served.get(charger, 0) + 1
        client.publish(formats.ota_topic(charger, "chunk", self.prefix), answer, qos=0)


class StatusWatch:
    """The chargers' update status (cp/+/ota/status, retained JSON), newest per charger."""

    def __init__(self, spec: mqtt_conn.BrokerSpec, client_id: str = "",
                 on_status: Callable[[str, dict], None] | None = None,
                 prefix: str = formats.PREFIX):
        self.latest: dict[str, dict] = {}
        self.history: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        self.on_status = on_status
        self.prefix = prefix
        self.c = mqtt_conn.connected(spec, client_id)
        self.c.on_message = self._on
        self.c.subscribe(formats.ota_filter("status", prefix), qos=0)

    def _on(self, client: Any, userdata: Any, msg: Any) -> None:
        route = formats.ota_route(msg.topic, self.prefix)
        if route is None or route[1] != "status" or not msg.payload:
            return
        try:
            st = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(st, dict):
            return
        with self.cond:
            self.latest[route[0]] = st
            self.history.append((route[0], st))
            self.cond.notify_all()
        if self.on_status is not None:
            self.on_status(route[0], st)

    def wait(self, pred: Callable[[dict[str, dict]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.latest):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def status_line(charger: str, st: dict) -> str:
    line = "%s running %s%s: %s" % (charger, st.get("running"), " (trial)" if st.get("trial") else "",
                                     st.get("state"))
    if st.get("target"):
        line += " -> %s chunk %s/%s" % (st["target"], st.get("chunk"), st.get("chunks"))
    if st.get("error"):
        line += " error %s: %s" % (st["error"], st.get("detail", ""))
    if st.get("rolled_back"):
        line += " (update %s was rolled back)" % st["rolled_back"]
    return line


def package_files(root: pathlib.Path, packages: list[str] | None) -> dict[str, bytes]:
    """The .mpy/.py files of whole packages under root (an update replaces a package whole)."""
    files = ota_manifest.files_under(root)
    wanted = packages or list(UPDATABLE)
    bad = [p for p in wanted if p not in UPDATABLE]
    if bad:
        raise UpdateError("not an updatable package: %s (one of %s)" % (", ".join(bad), ", ".join(UPDATABLE)))
    picked = {p: d for p, d in files.items() if p.split("/", 1)[0] in wanted}
    if not picked:
        raise UpdateError("no .mpy/.py files of %s under %s" % (", ".join(wanted), root))
    return picked


def _serve_forever(server: OtaServer, update: Update) -> int:
    server.publish_manifest(update)
    print("published update %s (number %d, %d files) for %s; serving chunks (Ctrl-C stops)"
          % (update.version, update.number, len(update.files), update.charger), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chargeproof ota", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="action", required=True)
    pub = sub.add_parser("publish", help="sign, publish and serve an update")
    pub.add_argument("--key", required=True, help="the operator key (PEM)")
    pub.add_argument("--version", required=True)
    pub.add_argument("--number", type=int, required=True, help="must rise with every update")
    pub.add_argument("--min-number", type=int, default=0,
                     help="chargers running an older number refuse it")
    pub.add_argument("--dir", required=True, type=pathlib.Path, help="the build (e.g. build/mpy)")
    pub.add_argument("--package", action="append", help="package to update (repeatable)")
    pub.add_argument("--charger", default="*", help="one charger (default: the fleet)")
    pub.add_argument("--chunk", type=int, default=ota_manifest.CHUNK)
    srv = sub.add_parser("serve", help="publish and serve a manifest signed elsewhere")
    srv.add_argument("--manifest", required=True, type=pathlib.Path)
    srv.add_argument("--dir", required=True, type=pathlib.Path)
    st = sub.add_parser("status", help="watch the chargers' update status")
    st.add_argument("--charger", action="append", default=[])
    st.add_argument("--want", help="exit 0 once every --charger runs this version, confirmed")
    st.add_argument("--timeout", type=float, default=600)
    wd = sub.add_parser("withdraw", help="clear the retained manifest")
    wd.add_argument("--charger", default="*")
    for sp in (pub, srv, st, wd):
        mqtt_conn.add_arguments(sp)
    a = ap.parse_args(argv)
    spec = mqtt_conn.spec_from_args(a)
    try:
        if a.action == "publish":
            from host_tools.provision.operator_cmd import load_key
            files = package_files(a.dir, a.package)
            raw = ota_manifest.signed(load_key(a.key), a.version, a.number, a.min_number, files,
                                      a.charger, a.chunk)
            update = Update.load(raw, files)
            return _serve_forever(OtaServer(spec, [update]).start(), update)
        if a.action == "serve":
            update = Update.load(a.manifest.read_bytes(), ota_manifest.files_under(a.dir))
            return _serve_forever(OtaServer(spec, [update]).start(), update)
        if a.action == "withdraw":
            server = OtaServer(spec).start()
            server.withdraw(a.charger)
            server.stop()
            return 0
        return _watch(spec, a.charger, a.want, a.timeout)
    except (UpdateError, OSError, TimeoutError, ConnectionRefusedError) as exc:
        print("chargeproof ota %s: %s" % (a.action, exc), file=sys.stderr)
        return 2


def _watch(spec: mqtt_conn.BrokerSpec, chargers: list[str], want: str | None, timeout: float) -> int:
    watch = StatusWatch(spec, on_status=lambda c, s: print(status_line(c, s), flush=True))
    failed: list[str] = []

    def done(latest: dict[str, dict]) -> bool:
        failed[:] = [c for c in chargers if latest.get(c, {}).get("state") in ("rejected", "failed")]
        if failed or want is None or not chargers:
            return bool(failed)
        return all(latest.get(c, {}).get("running") == want and not latest[c].get("trial")
                   for c in chargers)
    try:
        ok = watch.wait(done, timeout)
    except KeyboardInterrupt:
        ok = False
    finally:
        watch.close()
    if failed:
        return 1
    return 0 if ok or want is None else 1


if __name__ == "__main__":
    sys.exit(main())
