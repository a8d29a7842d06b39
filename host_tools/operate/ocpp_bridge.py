"""OCPP 1.6J bridge: each ChargeProof charger appears to a CSMS as an OCPP charge point.

    python -m host_tools.operate.ocpp_bridge --csms ws://csms.example:9000/ocpp/ \\
        --chargers chargers.json --key operator.pem --host 127.0.0.1 --port 1883

`chargers.json`: {"<charger id>": {"pubkey": "<SPKI hex>", "rated_a": 32, "phases": 3}, ...}.
Each charger connects as `<csms url><charger id>` (subprotocol ocpp1.6) with the `ocpp` library,
whose JSON schemas check every message both ways.

From the charger (MQTT) to the CSMS:
  status/health      BootNotification on connect, StatusNotification on every state change
  telemetry          StartTransaction when a session's first telemetry arrives (meterStart =
                     register - energy so far), then MeterValues (power, register); a session
                     started by a card is first sent as Authorize (below)
  receipt            verified with the charger's public key, then StopTransaction with the
                     meter's end reading and the signed OCMF record as SignedData sampled values
                     (contexts Transaction.Begin and Transaction.End) in transactionData
From the CSMS to the charger, as commands signed with the operator's key (docs/mqtt.md):
  RemoteStartTransaction -> start, RemoteStopTransaction -> stop, SetChargingProfile ->
  current_limit, ReserveNow / CancelReservation -> reserve / cancel_reservation,
  ChangeAvailability -> current_limit 0 (Inoperative) or the rating (Operative).
  TriggerMessage and GetConfiguration (MeterPublicKey[1]: the charger's key) are answered here.

Cards and the CSMS (docs/security.md, "Cards and the CSMS"). The charger authorises a card on
its own allow-list and starts at once, as an OCPP charge point with LocalPreAuthorize does; its
telemetry names the card by its pseudonym (never the UID), sent as idTag by its first 20 hex
digits (pseudonym.ocpp_id_tag) in Authorize, StartTransaction and StopTransaction alike. The
CSMS still has the last word (StopTransactionOnInvalidId): when the session's first telemetry
arrives while the CSMS is connected, the bridge sends Authorize before StartTransaction; any
answer other than Accepted, to Authorize or in StartTransaction's idTagInfo, stops the session
with a signed stop command and its StopTransaction carries reason DeAuthorized. A CSMS that is
unreachable (or silent) at that moment leaves the charger's local decision standing
(LocalAuthorizeOffline): no Authorize is sent later, and the queued StartTransaction's answer
still stops the session if it is running when the CSMS is back. Remote-started sessions are not
checked again (AuthorizeRemoteTxRequests false): the operator's signed start authorised them.

Either side may drop: transaction messages (Start/Stop) wait in a queue on disk and go out in
order once the CSMS is back; a receipt the charger resends (it does until a validator acks) is
recognised by its digest and never stopped twice. Only a receipt that verifies with the
charger's key can end a transaction.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import json
import logging
import os
import threading
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import (Action, AuthorizationStatus, AvailabilityStatus, AvailabilityType,
                            CancelReservationStatus,
                            ChargePointErrorCode, ChargePointStatus, ChargingProfileStatus,
                            ConfigurationStatus, MessageTrigger, Reason, RegistrationStatus,
                            RemoteStartStopStatus, ReservationStatus, TriggerMessageStatus)

from host_tools.provision import operator_cmd
from host_tools.provision.pseudonym import ocpp_id_tag
from host_tools.verify import receipt as receipt_mod

log = logging.getLogger("chargeproof.ocpp")

VOLTS = 230                       # nominal phase voltage for W -> A charging profiles
# The charger's session states (firmware/session/charger.py) as OCPP 1.6 connector statuses.
STATUS = {"idle": ChargePointStatus.available, "connected": ChargePointStatus.preparing,
          "authorised": ChargePointStatus.preparing, "charging": ChargePointStatus.charging,
          "suspended": ChargePointStatus.suspended_ev, "stopped": ChargePointStatus.finishing,
          "closing": ChargePointStatus.finishing, "recovering": ChargePointStatus.unavailable,
          "fault": ChargePointStatus.faulted}
# Receipt stop reasons (firmware) as OCPP Reason.
REASONS = {"ev-unplugged": Reason.ev_disconnected, "remote": Reason.remote,
           "local": Reason.local, "card": Reason.local, "user": Reason.local,
           "power-loss": Reason.power_loss,
           "reboot": Reason.reboot}
SIGNED_FORMS = ("plain", "json")
HEX = "0123456789ABCDEF"
# What the charge point the CSMS sees is configured to do (GetConfiguration; read-only).
CONFIGURATION = {"NumberOfConnectors": "1", "LocalPreAuthorize": "true",
                 "LocalAuthorizeOffline": "true", "AuthorizeRemoteTxRequests": "false",
                 "StopTransactionOnInvalidId": "true"}


def session_identity(t: dict[str, Any]) -> tuple[str | None, str | None]:
    """(id, OCMF type) a charger's telemetry names its session by (firmware/app/charger_app.py):
    a card's pseudonym (LOCAL: exactly 32 upper-case hex digits) or a remote id (CENTRAL:
    1..64 printable ASCII characters); (None, None) for anything else (free mode, an older
    firmware, or junk: telemetry is not signed)."""
    ident, kind = t.get("id"), t.get("it")
    if not isinstance(ident, str) or not isinstance(kind, str):
        return None, None
    if kind == "LOCAL" and len(ident) == 32 and all(c in HEX for c in ident):
        return ident, kind
    if kind == "CENTRAL" and 0 < len(ident) <= 64 and ident.isascii() and ident.isprintable():
        return ident, kind
    return None, None


def iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def signed_value(ocmf: str, pubkey_hex: str, form: str) -> str:
    """The OCMF record as a SampledValue's value: verbatim (EVerest's form) or OCPP 2.0.1's
    SignedMeterValue type inside the 1.6 string, as some backends expect."""
    if form == "plain":
        return ocmf
    return json.dumps({"signedMeterValue": base64.b64encode(ocmf.encode()).decode(),
                       "encodingMethod": "OCMF",
                       "publicKey": base64.b64encode(bytes.fromhex(pubkey_hex)).decode()})


class ChargerState:
    """What the bridge remembers of one charger, on disk (atomic replace) so a restart of the
    bridge neither loses a queued Stop nor sends one twice."""

    KEEP_DIGESTS = 256

    def __init__(self, path: str):
        self.path = path
        d: dict[str, Any] = {}
        if os.path.exists(path):
            with open(path) as f:
                d = json.load(f)
        self.transaction_id: int | None = d.get("transaction_id")
        self.open: bool = d.get("open", False)          # a session is running (Start queued/sent)
        self.queue: list[list[Any]] = d.get("queue", [])  # [kind, payload] in order
        self.receipts: list[str] = d.get("receipts", [])  # digests already stopped
        self.id_tag: str | None = d.get("id_tag")         # from RemoteStartTransaction
        self.unavailable: bool = d.get("unavailable", False)
        self.session_no: int = d.get("session_no", 0)     # sessions opened here, the open one last
        # The session the CSMS refused (its number), and whether its signed stop is still owed
        # (the charger was offline when the answer came).
        self.deauthorized: int | None = d.get("deauthorized")
        self.stop_owed: bool = d.get("stop_owed", False)

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"transaction_id": self.transaction_id, "open": self.open,
                       "queue": self.queue, "receipts": self.receipts[-self.KEEP_DIGESTS:],
                       "id_tag": self.id_tag, "unavailable": self.unavailable,
                       "session_no": self.session_no, "deauthorized": self.deauthorized,
                       "stop_owed": self.stop_owed}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class BridgedCharger:
    """One ChargeProof charger: its MQTT side and its OCPP link."""

    def __init__(self, bridge: "OcppBridge", charger_id: str, info: dict[str, Any]):
        self.bridge = bridge
        self.id = charger_id
        self.pubkey_hex: str = info["pubkey"]
        self.rated_a: int = info.get("rated_a", 32)
        self.phases: int = info.get("phases", 3)
        self.state = ChargerState(os.path.join(bridge.state_dir, charger_id + ".json"))
        self.online = False
        self.health: dict[str, Any] = {}
        self.telemetry: dict[str, Any] | None = None
        self.cp: "CentralLink | None" = None
        self.wake = asyncio.Event()
        self.last_status: str | None = None
        self.stops_sent = 0
        self.meter_sent_at = 0.0

    # ---- MQTT events (run on the bridge's loop) ---------------------------------------------
    def on_status(self, payload: bytes) -> None:
        was = self.online
        self.online = payload == b"online"
        st = self.state
        if self.online and not was and st.open and st.deauthorized == st.session_no:
            st.stop_owed = True          # back online: the stop sent before may have been lost
        self.send_owed_stop()
        self.wake.set()

    def on_health(self, payload: bytes) -> None:
        try:
            h = json.loads(payload)
        except ValueError:
            return
        if isinstance(h, dict):
            self.health = h
            self.wake.set()

    def on_telemetry(self, payload: bytes) -> None:
        try:
            t = json.loads(payload)
            w, wh, reg = int(t["w"]), int(t["wh"]), int(t["reg"])
        except (ValueError, KeyError, TypeError):
            return
        self.telemetry = {"w": w, "wh": wh, "reg": reg}
        if not self.state.open:
            ident, kind = session_identity(t)
            card = kind == "LOCAL"
            self.state.open = True
            self.state.session_no += 1
            self.state.transaction_id = None
            # A card's session is put to the CSMS (Authorize) only if it is there to answer
            # now: otherwise the charger's own decision stands (LocalAuthorizeOffline).
            self.state.queue.append(["start", {
                "id_tag": ocpp_id_tag(ident or self.state.id_tag or "LOCAL"),
                "meter_start": reg - wh, "timestamp": iso(self.bridge.now()),
                "session": self.state.session_no, "card": card,
                "ask": card and self.cp is not None and not self.cp.closed}])
            self.state.id_tag = None
            self.state.save()
        self.wake.set()

    def on_receipt(self, payload: bytes) -> None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest in self.state.receipts:
            return                                          # a resend: stopped already
        try:
            rc = receipt_mod.parse(payload)
            if not rc.verify(bytes.fromhex(self.pubkey_hex)) or rc["charger"] != self.id:
                raise receipt_mod.ReceiptError("signature or charger id does not verify")
            rec = rc.ocmf_record()
            begin, end = rec.begin_end()
        except Exception as exc:      # hostile input: anything that fails is ignored, logged
            log.warning("%s: receipt ignored: %s", self.id, exc)
            self.bridge.receipts_refused += 1
            return
        ocmf = rc["ocmf"]
        if not self.state.open:       # the bridge missed the start: send it from the receipt
            self.state.queue.append(["start", {"id_tag": rec.payload.get("ID") or "LOCAL",
                                               "meter_start": int(begin["wh"]),
                                               "timestamp": iso(int(begin["time"]))}])
        st = self.state
        reason = REASONS.get(rc["reason"], Reason.other)
        if st.open and st.deauthorized == st.session_no and rc["reason"] == "remote":
            reason = Reason.de_authorized          # stopped because the CSMS refused the card
        form = self.bridge.signed_form
        value = signed_value(ocmf, self.pubkey_hex, form)
        data = [{"timestamp": iso(int(begin["time"])), "sampledValue": [
                    {"value": value, "format": "SignedData", "context": "Transaction.Begin"}]},
                {"timestamp": iso(int(end["time"])), "sampledValue": [
                    {"value": value, "format": "SignedData", "context": "Transaction.End"}]}]
        self.state.queue.append(["stop", {
            "meter_stop": int(end["wh"]), "timestamp": iso(int(end["time"])),
            "reason": reason.value,
            "id_tag": rec.payload.get("ID") or None, "transaction_data": data}])
        self.state.open = False
        self.state.deauthorized = None
        self.state.stop_owed = False
        self.state.receipts.append(digest)
        self.state.save()
        self.wake.set()

    # ---- the OCPP link ------------------------------------------------------------------------
    def status_now(self) -> tuple[str, str, str | None]:
        if self.state.unavailable:
            return ChargePointStatus.unavailable.value, ChargePointErrorCode.no_error.value, None
        if not self.online:
            return ChargePointStatus.unavailable.value, ChargePointErrorCode.no_error.value, "offline"
        st = STATUS.get(self.health.get("state"), ChargePointStatus.available)
        fault = self.health.get("fault")
        err = ChargePointErrorCode.other_error if fault else ChargePointErrorCode.no_error
        return st.value, err.value, (str(fault)[:50] if fault else None)

    async def run(self) -> None:
        """Connect, boot, and keep the CSMS informed; reconnect with backoff when it drops."""
        delay = 0.5
        url = self.bridge.csms_url + self.id
        while not self.bridge.stopping:
            try:
                async with websockets.connect(url, subprotocols=["ocpp1.6"],
                                              open_timeout=10) as ws:
                    delay = 0.5
                    self.cp = CentralLink(self.id, ws, self)
                    listener = asyncio.create_task(self.cp.start())
                    try:
                        await self._session()
                    finally:
                        listener.cancel()
                        self.cp = None
            except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError) as exc:
                log.info("%s: CSMS link down (%s); retry in %.1f s", self.id, exc, delay)
            if self.bridge.stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        cp = self.cp
        boot = await cp.call(call.BootNotification(
            charge_point_model="ChargeProof ESP32", charge_point_vendor="ChargeProof",
            charge_point_serial_number=self.id))
        interval = boot.interval if boot.status == RegistrationStatus.accepted else 30
        self.last_status = None
        heartbeat_at = self.bridge.now() + max(interval, 1)
        while not self.bridge.stopping:
            self.send_owed_stop()
            await self._send_status()
            await self._flush_queue()
            await self._meter_values()
            if self.bridge.now() >= heartbeat_at:
                await cp.call(call.Heartbeat())
                heartbeat_at = self.bridge.now() + max(interval, 1)
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            except asyncio.TimeoutError:
                pass
            if cp.closed:
                raise OSError("connection closed")

    async def _send_status(self, force: bool = False) -> None:
        status, err, info = self.status_now()
        key = "%s/%s/%s" % (status, err, info)
        if force or key != self.last_status:
            await self.cp.call(call.StatusNotification(connector_id=1, error_code=err,
                                                       status=status, info=info,
                                                       timestamp=iso(self.bridge.now())))
            self.last_status = key

    async def _flush_queue(self) -> None:
        while self.state.queue:
            kind, p = self.state.queue[0]
            if kind == "start":
                if p.get("ask"):
                    p["ask"] = False        # asked once at most: a drop meanwhile keeps it local
                    self.state.save()
                    await self._authorize(p)
                res = await self.cp.call(call.StartTransaction(
                    connector_id=1, id_tag=ocpp_id_tag(p["id_tag"]), meter_start=p["meter_start"],
                    timestamp=p["timestamp"]))
                if res is None:     # a CallError: no transaction there; its end is still reported
                    log.warning("%s: StartTransaction refused as a call", self.id)
                    self.state.transaction_id = None
                else:
                    self.state.transaction_id = res.transaction_id
                    if p.get("card"):
                        self.verdict(p["session"], res.id_tag_info["status"], "StartTransaction")
            else:
                tx = self.state.transaction_id
                if tx is None:
                    tx = -1          # never started here (CSMS lost it): still report the end
                await self.cp.call(call.StopTransaction(
                    meter_stop=p["meter_stop"], timestamp=p["timestamp"], transaction_id=tx,
                    reason=p["reason"], id_tag=(p["id_tag"] or None) and ocpp_id_tag(p["id_tag"]),
                    transaction_data=p["transaction_data"]))
                self.state.transaction_id = None
                self.stops_sent += 1
            self.state.queue.pop(0)
            self.state.save()

    async def _authorize(self, p: dict[str, Any]) -> None:
        """Authorize for a card's session before its StartTransaction. No answer in time (or
        a CallError) leaves the charger's local decision standing."""
        try:
            res = await self.cp.call(call.Authorize(id_tag=p["id_tag"]))
        except asyncio.TimeoutError:
            log.warning("%s: no answer to Authorize: the charger's decision stands", self.id)
            return
        if res is None:
            log.warning("%s: Authorize refused as a call: the charger's decision stands", self.id)
            return
        self.verdict(p["session"], res.id_tag_info["status"], "Authorize")

    def verdict(self, session: int, status: str, source: str) -> None:
        """The CSMS's answer for the card of session number `session`: anything but Accepted
        stops that session (StopTransactionOnInvalidId), if it is still the running one."""
        st = self.state
        if status == AuthorizationStatus.accepted:
            return
        if not st.open or session != st.session_no or st.deauthorized == session:
            return                  # over already, or stopped already
        log.warning("%s: %s says %s: stopping the session", self.id, source, status)
        st.deauthorized = session
        st.stop_owed = True
        st.save()
        self.send_owed_stop()

    def send_owed_stop(self) -> None:
        """The signed stop for a session the CSMS refused, once the charger is online."""
        st = self.state
        if not st.stop_owed:
            return
        if not st.open or st.deauthorized != st.session_no:
            st.stop_owed = False
        elif self.command("stop", {}):
            st.stop_owed = False
        else:
            return
        st.save()

    async def _meter_values(self, force: bool = False) -> None:
        t = self.telemetry
        if t is None or self.state.transaction_id is None or not self.state.open:
            return
        now = self.bridge.now()
        if not force and now - self.meter_sent_at < self.bridge.meter_interval_s:
            return                                  # OCPP's MeterValueSampleInterval
        self.meter_sent_at = now
        self.telemetry = None
        await self.cp.call(call.MeterValues(
            connector_id=1, transaction_id=self.state.transaction_id,
            meter_value=[{"timestamp": iso(self.bridge.now()), "sampledValue": [
                {"value": str(t["w"]), "measurand": "Power.Active.Import", "unit": "W"},
                {"value": str(t["reg"]), "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh"}]}]))

    # ---- commands to the charger --------------------------------------------------------------
    def command(self, name: str, args: dict[str, Any]) -> bool:
        if not self.online:
            return False
        self.bridge.publish_command(self.id, name, args)
        return True


class CentralLink(ChargePoint):
    """The OCPP charge point the CSMS sees for one charger; CSMS calls become commands."""

    def __init__(self, charger_id: str, ws: Any, charger: BridgedCharger):
        super().__init__(charger_id, ws, response_timeout=10)
        self.charger = charger
        self.closed = False

    async def start(self) -> None:
        try:
            await super().start()
        finally:
            self.closed = True
            self.charger.wake.set()

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any):
        ch = self.charger
        if ch.state.open or not ch.command("start", {"id_tag": id_tag}):
            return call_result("RemoteStartTransaction", status=RemoteStartStopStatus.rejected)
        ch.state.id_tag = id_tag
        ch.state.save()
        return call_result("RemoteStartTransaction", status=RemoteStartStopStatus.accepted)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **_: Any):
        ch = self.charger
        ok = transaction_id == ch.state.transaction_id and ch.command("stop", {})
        return call_result("RemoteStopTransaction", status=RemoteStartStopStatus.accepted if ok
                           else RemoteStartStopStatus.rejected)

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict, **_: Any):
        ch = self.charger
        sched = cs_charging_profiles.get("charging_schedule", {})
        periods = sched.get("charging_schedule_period") or []
        if not periods:
            return call_result("SetChargingProfile", status=ChargingProfileStatus.rejected)
        limit = float(periods[0]["limit"])
        phases = int(periods[0].get("number_phases") or ch.phases)
        amps = limit if sched.get("charging_rate_unit") == "A" else limit / (VOLTS * phases)
        ma = max(0, min(int(amps * 1000), ch.rated_a * 1000))
        ok = ch.command("current_limit", {"ma": ma})
        return call_result("SetChargingProfile", status=ChargingProfileStatus.accepted if ok
                           else ChargingProfileStatus.rejected)

    @on(Action.reserve_now)
    async def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str,
                             reservation_id: int, **_: Any):
        until = int(datetime.datetime.fromisoformat(expiry_date.replace("Z", "+00:00")).timestamp())
        ok = self.charger.command("reserve", {"id_tag": id_tag, "until": until})
        return call_result("ReserveNow", status=ReservationStatus.accepted if ok
                           else ReservationStatus.unavailable)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any):
        ok = self.charger.command("cancel_reservation", {})
        return call_result("CancelReservation", status=CancelReservationStatus.accepted if ok
                           else CancelReservationStatus.rejected)

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str, **_: Any):
        ch = self.charger
        off = type == AvailabilityType.inoperative
        if not ch.command("current_limit", {"ma": 0 if off else ch.rated_a * 1000}):
            return call_result("ChangeAvailability", status=AvailabilityStatus.rejected)
        ch.state.unavailable = off
        ch.state.save()
        ch.wake.set()
        return call_result("ChangeAvailability", status=AvailabilityStatus.accepted)

    @on(Action.trigger_message)
    async def on_trigger_message(self, requested_message: str, **_: Any):
        ch = self.charger
        if requested_message == MessageTrigger.status_notification:
            ch.last_status = None
        elif requested_message == MessageTrigger.meter_values:
            ch.meter_sent_at = 0.0
        elif requested_message not in (MessageTrigger.heartbeat,
                                       MessageTrigger.boot_notification):
            return call_result("TriggerMessage", status=TriggerMessageStatus.not_implemented)
        ch.wake.set()
        return call_result("TriggerMessage", status=TriggerMessageStatus.accepted)

    @on(Action.get_configuration)
    async def on_get_configuration(self, key: list | None = None, **_: Any):
        known = dict(CONFIGURATION, **{"MeterPublicKey[1]": self.charger.pubkey_hex})
        wanted = key or list(known)
        return call_result("GetConfiguration", configuration_key=[
            {"key": k, "readonly": True, "value": known[k]} for k in wanted if k in known],
            unknown_key=[k for k in wanted if k not in known] or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key: str, value: str, **_: Any):
        return call_result("ChangeConfiguration", status=ConfigurationStatus.rejected)


def call_result(action: str, **kw: Any) -> Any:
    from ocpp.v16 import call_result as cr
    return getattr(cr, action)(**kw)


class OcppBridge:
    """The bridge process: one MQTT client, one OCPP link per charger, on one asyncio loop in
    a thread of its own (start/stop)."""

    def __init__(self, csms_url: str, chargers: dict[str, dict[str, Any]], operator_key: Any,
                 mqtt_client: Any, state_dir: str, prefix: str = "cp",
                 signed_form: str = "plain", now: Any = None):
        import time
        if signed_form not in SIGNED_FORMS:
            raise ValueError("signed_form must be one of %s" % ", ".join(SIGNED_FORMS))
        self.csms_url = csms_url if csms_url.endswith("/") else csms_url + "/"
        self.key = operator_key
        self.mqtt = mqtt_client
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.prefix = prefix
        self.signed_form = signed_form
        self.now = now or time.time
        self.stopping = False
        self.receipts_refused = 0
        self.meter_interval_s = 10.0
        self.loop = asyncio.new_event_loop()
        # Made before any message can arrive, so a retained status is never dropped.
        self.chargers = {cid: BridgedCharger(self, cid, info) for cid, info in chargers.items()}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # MQTT side (paho's thread): hand every message to the loop.
    def subscribe(self) -> None:
        for kind in ("status", "health", "telemetry", "receipt/+"):
            self.mqtt.subscribe("%s/+/%s" % (self.prefix, kind), 1)

    def on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self.loop.call_soon_threadsafe(self._route, msg.topic, bytes(msg.payload))

    def _route(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 3 or parts[0] != self.prefix or parts[1] not in self.chargers:
            return
        ch, kind = self.chargers[parts[1]], parts[2]
        if len(payload) > 4096:
            return                                  # nothing legitimate is that large
        handler = {"status": ch.on_status, "health": ch.on_health,
                   "telemetry": ch.on_telemetry, "receipt": ch.on_receipt}.get(kind)
        if handler is not None and (kind != "receipt" or len(parts) == 4):
            handler(payload)

    def publish_command(self, charger: str, name: str, args: dict[str, Any]) -> None:
        msg = operator_cmd.sign(self.key, charger, name, args, now=int(self.now()))
        self.mqtt.publish("%s/%s/cmd" % (self.prefix, charger), msg, qos=1)

    # asyncio side
    async def _main(self) -> None:
        self._ready.set()
        await asyncio.gather(*(ch.run() for ch in self.chargers.values()))

    def start(self) -> "OcppBridge":
        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._main())
            except asyncio.CancelledError:
                pass
        self._thread = threading.Thread(target=run, name="ocpp-bridge", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self.stopping = True
        for ch in self.chargers.values():
            self.loop.call_soon_threadsafe(ch.wake.set)
        if self._thread is not None:
            self._thread.join(15)


def main(argv: list[str] | None = None) -> int:
    import time

    from host_tools import mqtt_conn
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csms", required=True, help="ws://host:port/path/ (charger id appended)")
    ap.add_argument("--chargers", required=True, help="JSON file {id: {pubkey, rated_a, phases}}")
    ap.add_argument("--key", required=True, help="the operator's key (PEM)")
    mqtt_conn.add_arguments(ap, host_flag="--host")     # login (an operator's) and TLS
    ap.add_argument("--state-dir", default="ocpp-bridge-state")
    ap.add_argument("--signed-form", choices=SIGNED_FORMS, default="plain",
                    help="OCMF verbatim (plain) or OCPP 2.0.1's SignedMeterValue as JSON")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with open(a.chargers) as f:
        chargers = json.load(f)
    spec = mqtt_conn.spec_from_args(a)
    client = mqtt_conn.client(spec, client_id="chargeproof-ocpp")
    bridge = OcppBridge(a.csms, chargers, operator_cmd.load_key(a.key), client, a.state_dir,
                        signed_form=a.signed_form)
    client.on_connect = lambda c, u, f, rc, p=None: bridge.subscribe()
    client.on_message = bridge.on_message
    client.connect(spec.host, spec.port)
    client.loop_start()
    bridge.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        bridge.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
