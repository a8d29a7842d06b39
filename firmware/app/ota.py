# Updates over MQTT (docs/mqtt.md, "Updates"): the charger's side of the transport, between the
# link (uplink/mqtt.py: topics, one slot per topic) and the Updater (app/update.py: signature,
# chunks on flash, the switch). One step() per main-loop pass does a bounded amount of work:
# at most one manifest checked (a signature: the safety watch runs inside it), at most one chunk
# checked and written (1 KiB and its Merkle proof), at most one chunk request and one status.
#
#   cp/<id>/ota/manifest, ota/manifest  (retained, operator)  the signed manifest
#   cp/<id>/ota/req      (charger)  {"n": <update number>, "f": <file index>, "o": <offset>}
#   cp/<id>/ota/chunk    (server)   one chunk message (app/update.py) for the last request
#   cp/<id>/ota/status   (charger, retained)  what the operator watches:
#     {"running": "<version>", "number": n, "trial": bool, "state": <below>, "target": version
#      or null, "target_number": n or null, "chunk": i, "chunks": total, "error": reason or
#      null, "detail": text, "rolled_back": number or 0}
#   state: "idle" (nothing to do), "current" (the manifest names the running version),
#          "downloading", "waiting-idle" (staged, a session runs), "rebooting", "rejected"
#          (the manifest was refused: error says why), "failed" (staging stopped: error).
#
# Stop-and-wait: the charger asks for the chunk next_needed() names (what is on flash), so a
# reboot or a dropped connection resumes where the flash says, and a lost or corrupt answer is
# asked for again (at once for a corrupt one, after retry_ms for a missing one).
# The trial: a version on trial confirms itself (store/bootsel.confirm) once it has run
# confirm_ms with the loop passing, no loop fault seen since boot, and (with a network) the
# broker reached.
# If it has not after 3 x confirm_ms, it rolls itself back and resets when no session runs.
# The Updater (app/update.py, ~1.5 KB of heap with its module) is built only while an update
# is in hand: a manifest to check, a staging to carry on; otherwise it is dropped and its
# module forgotten, so the charger's heap does not carry it through every session.
import hashlib
import json

from store import atomic, bootsel

from app import forget

MAX_WHOLE_FILE_FAILS = 3        # a file whose chunks all verify yet hashes wrong: a bad manifest
PROGRESS_EVERY = 16             # chunks between two progress statuses


class OtaClient:
    def __init__(self, root, link, clock, confirm_ms, reset=None, make_updater=None,
                 retry_ms=5000, healthy=None):
        # link: uplink.mqtt.Link built with ota=True, or None (no network: only the trial);
        # make_updater(): a new app.update.Updater, or None (no operator key: updates are
        # refused); reset: reboots the board (hal), None: stay (tests); healthy(): False
        # while the running version misbehaves (a loop fault), checked before it confirms.
        self.root = root
        self.link = link
        self.clock = clock
        self.make_updater = make_updater
        self.updater = None                 # built while an update is in hand (_updater)
        self.reset = reset
        self.healthy = healthy
        self.confirm_ms = confirm_ms
        self.retry_ms = retry_ms
        self.number, self.version = bootsel.active(root)
        self.trial = bootsel.on_trial(root)
        self.rolled_back = bootsel.state(root).get("bad", 0)
        self._booted = clock.ticks_ms()
        self._sick = False                  # a loop fault seen on trial: never confirmed
        self._reached = link is None        # the broker reached since boot (or no network)
        self.state = "idle"
        self.error = None
        self.detail = ""
        self.target = None                  # (number, version) being staged
        self._seen = [None, None]           # digests of the last manifests taken (retained repeats)
        self._asked = None                  # (file, offset) asked for, and when
        self._asked_at = 0
        self._file_fails = 0
        self._status_sent = None            # (state, error, target, connects) last published
        self._chunks_at_status = -PROGRESS_EVERY
        self._progress = (0, 0)
        self.chunks_in = 0                  # counters for the status and the tests
        self.corrupt = 0
        self.stray = 0
        # What arrives waits in one slot per topic (the newest wins): at most one manifest and
        # one chunk are taken a pass.
        self.own = None                     # cp/<id>/ota/manifest
        self.fleet = None                   # ota/manifest
        self.chunk_in = None                # cp/<id>/ota/chunk
        if link is not None and make_updater is not None:
            t = link.topics
            link.extra_subs = ((t.ota_chunk, 0), (t.ota_manifest, 1), (t.ota_fleet, 1))
            link.on_other = self._on_message
            # Built at boot only if a staging survived a reboot: an Updater made and dropped
            # here would leave a hole among the boot's long-lived objects (a big integer's
            # allocation then searches past it: the signer's steps grew by ~100 us).
            if atomic.exists(root + "/staged"):
                u = self._updater()
                if u.manifest is not None:
                    m = u.manifest
                    self.target = (m["number"], m["version"])
                    self.state = "downloading"
                else:
                    self._drop_updater()

    def _updater(self):
        """The Updater, built now if no update is in hand; each new one first removes the
        version directories neither running, previous nor staged."""
        if self.updater is None:
            u = self.make_updater()
            u.cleanup()
            self.updater = u
        return self.updater

    def _drop_updater(self):
        """No update in hand (nothing staged): the Updater and its module leave the heap."""
        if self.updater is not None and self.updater.manifest is None:
            self.updater = None
            forget("app.update")

    def _on_message(self, topic, msg):
        # Called by the link inside its poll. An empty (retained) message withdraws a manifest.
        if not msg:
            return
        t = self.link.topics
        if topic == t.ota_chunk:
            self.chunk_in = msg
        elif topic == t.ota_manifest:
            self.own = msg
        elif topic == t.ota_fleet:
            self.fleet = msg

    # ---- the main loop's pass ----------------------------------------------------------------

    def step(self, idle):
        """idle: no session runs (the only moment a switch, or a trial's rollback, may happen)."""
        link = self.link
        if link is not None and link.connected:
            self._reached = True
        self._trial_step(idle)
        if link is None or self.make_updater is None:
            return
        raw = self.own
        if raw is not None:
            self.own = None
            self._manifest(raw)
        else:
            raw = self.fleet
            if raw is not None:
                self.fleet = None
                self._manifest(raw)
        raw = self.chunk_in
        if raw is not None:
            self.chunk_in = None
            self._chunk(raw)
        u = self.updater
        if u is None:                       # nothing in hand
            self._status()
            return
        if self.state == "downloading":
            if u.ready():
                self.state = "waiting-idle"
            else:
                self._request()
        if self.state == "waiting-idle" and idle and u.ready():
            self._progress = u.progress()
            u.apply(True)
            self.state = "rebooting"
            self._status(force=True)
            if self.reset is not None:
                link.close()
                self.reset()
            return
        self._status()

    def _trial_step(self, idle):
        if not self.trial:
            return
        age = self.clock.ticks_diff(self.clock.ticks_ms(), self._booted)
        if self.healthy is not None and not self.healthy():
            self._sick = True               # once is enough: a loop fault clears after a while
        if age >= self.confirm_ms and self._reached and not self._sick:
            bootsel.confirm(self.root)
            self.trial = False
            self._status(force=True)
        elif age >= 3 * self.confirm_ms and idle:
            # Never confirmed healthy: back to the previous version (the selector would do the
            # same after MAX_BOOTS boots; this does it without waiting for a power cycle).
            bootsel.rollback(self.root)
            self.trial = False
            if self.reset is not None:
                self.reset()

    # ---- what arrives --------------------------------------------------------------------------

    def _manifest(self, raw):
        digest = hashlib.sha256(raw).digest()
        if digest in self._seen:            # a retained manifest again (reconnect): done already
            return
        self._seen[1] = self._seen[0]
        self._seen[0] = digest
        u = self._updater()
        from app import update as up        # loaded by _updater()
        try:
            u.offer(raw)
        except up.UpdateRejected as exc:
            if exc.reason == up.DOWNGRADE and self._names_running(raw):
                if self.state in ("idle", "rejected"):
                    self.state, self.error, self.detail = "current", None, ""
                self._drop_updater()
                return
            if self.state in ("downloading", "waiting-idle"):
                return                      # a refused manifest does not stop a good update
            self.state, self.error, self.detail = "rejected", exc.reason, exc.detail
            self._drop_updater()
            return
        except OSError as exc:              # flash full or failing: the running version stays
            self.state, self.error, self.detail = "failed", "flash", repr(exc)
            self._drop_updater()
            return
        m = u.manifest
        self.target = (m["number"], m["version"])
        self.state, self.error, self.detail = "downloading", None, ""
        self._asked = None
        self._file_fails = 0

    def _names_running(self, raw):
        # Only after offer() refused it as a downgrade, i.e. after the signature held.
        try:
            return json.loads(raw[:raw.rfind(b"|")])["number"] == self.number
        except (ValueError, KeyError, TypeError):
            return False

    def _chunk(self, raw):
        if self.state != "downloading":
            self.stray += 1
            return
        from app import update as up        # in hand while downloading
        try:
            self.updater.receive(raw)
        except up.UpdateRejected as exc:
            if exc.reason == up.CORRUPT:
                self.corrupt += 1
                self.error, self.detail = exc.reason, exc.detail
                if exc.detail.endswith("fetching it again"):     # the whole file hashed wrong
                    self._file_fails += 1
                    if self._file_fails >= MAX_WHOLE_FILE_FAILS:
                        self.state = "failed"
                        return
                self._asked = None           # ask again now
            else:
                self.stray += 1              # late, repeated or another update's: ignore
            return
        except OSError as exc:
            self.state, self.error, self.detail = "failed", "flash", repr(exc)
            return
        self.chunks_in += 1
        if self._status_sent is not None and self._status_sent[1] == self.error:
            # A refusal stays in the status until a status carrying it has gone out: the
            # good copy may arrive on the next pass, before a lost status was sent again.
            self.error, self.detail = None, ""
        self._asked = None

    def _request(self):
        link = self.link
        if not link.connected:
            self._asked = None               # ask again once connected
            return
        want = self.updater.next_needed()
        now = self.clock.ticks_ms()
        if self._asked == want and self.clock.ticks_diff(now, self._asked_at) < self.retry_ms:
            return
        payload = b'{"n":%d,"f":%d,"o":%d}' % (self.target[0], want[0], want[1])
        if link.publish(link.topics.ota_req, payload):
            self._asked = want
            self._asked_at = now

    # ---- what the operator sees ----------------------------------------------------------------

    def status(self):
        """The status message (JSON bytes)."""
        t = self.target
        done, total = (0, 0)
        if self.updater is not None and self.updater.manifest is not None:
            done, total = self._progress = self.updater.progress()
        elif t is not None and self.state == "rebooting":
            done, total = self._progress          # switched: the staging record is gone
        return json.dumps({
            "running": self.version, "number": self.number, "trial": self.trial,
            "state": self.state, "target": t[1] if t else None,
            "target_number": t[0] if t else None, "chunk": done, "chunks": total,
            "error": self.error, "detail": self.detail, "rolled_back": self.rolled_back,
        }).encode()

    def _status(self, force=False):
        link = self.link
        if link is None or not link.connected:
            return
        key = (self.state, self.error, self.target, self.trial, link.connects)
        due = self.chunks_in - self._chunks_at_status >= PROGRESS_EVERY
        if not force and key == self._status_sent and not due:
            return
        if link.publish(link.topics.ota_status, self.status(), retain=True):
            self._status_sent = key
            self._chunks_at_status = self.chunks_in
