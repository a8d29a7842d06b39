"""A small OCPP 1.6J central system (CSMS), built with the `ocpp` library, that accepts every
charge point and records every call: for the bridge's tests and for `make demo OCPP=...`.

    python -m host_tools.sim.csms --port 9000      # then: make demo OCPP=ws://127.0.0.1:9000/ocpp/
"""
import argparse
import asyncio
import datetime
import threading
import time

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.exceptions import InternalError
from ocpp.v16.enums import Action, RegistrationStatus


class CentralSystem:
    """A CSMS on its own loop and thread; records every call a charge point makes."""

    def __init__(self, port):
        self.port = port
        self.calls = []                  # (charger, action, payload dict)
        self.points = {}
        self.tx = 100
        self.id_tag_status = {}          # idTag -> what Authorize/StartTransaction answer
        self.start_errors = 0            # answer that many StartTransactions with a CallError
        self.loop = asyncio.new_event_loop()
        self.server = None
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.run(self._serve())

    def run(self, coro, timeout=15):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self):
        self.server = await websockets.serve(self._handler, "127.0.0.1", self.port,
                                             subprotocols=["ocpp1.6"])

    async def _handler(self, ws):
        cid = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        cp = Recorder(cid, ws, self)
        self.points[cid] = cp
        try:
            await cp.start()
        except websockets.exceptions.ConnectionClosed:
            pass

    def stop(self):
        async def close():
            self.server.close()
            for cp in list(self.points.values()):
                await cp._connection.close()
            await self.server.wait_closed()
        self.run(close())
        self.points.clear()

    def start(self):
        self.run(self._serve())

    def status_of(self, id_tag):
        """The idTagInfo status for id_tag: Accepted unless told otherwise (id_tag_status)."""
        return self.id_tag_status.get(id_tag, "Accepted")

    def remote(self, cid, request):
        return self.run(self.points[cid].call(request))

    def wait(self, action, count=1, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = [c for c in self.calls if c[1] == action]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return [c for c in self.calls if c[1] == action]


class Recorder(ChargePoint):
    def __init__(self, cid, ws, csms):
        super().__init__(cid, ws)
        self.csms = csms

    def _log(self, action, **kw):
        self.csms.calls.append((self.id, action, kw))

    @on(Action.boot_notification)
    async def boot(self, **kw):
        self._log("BootNotification", **kw)
        return call_result.BootNotification(
            current_time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            interval=300, status=RegistrationStatus.accepted)

    @on(Action.heartbeat)
    async def heartbeat(self, **kw):
        self._log("Heartbeat", **kw)
        return call_result.Heartbeat(
            current_time=datetime.datetime.now(datetime.timezone.utc).isoformat())

    @on(Action.status_notification)
    async def status(self, **kw):
        self._log("StatusNotification", **kw)
        return call_result.StatusNotification()

    @on(Action.authorize)
    async def authorize(self, **kw):
        self._log("Authorize", **kw)
        return call_result.Authorize(id_tag_info={"status": self.csms.status_of(kw["id_tag"])})

    @on(Action.start_transaction)
    async def start_tx(self, **kw):
        self._log("StartTransaction", **kw)
        if self.csms.start_errors > 0:
            self.csms.start_errors -= 1
            raise InternalError(description="this CSMS refuses the transaction")
        self.csms.tx += 1
        return call_result.StartTransaction(
            transaction_id=self.csms.tx, id_tag_info={"status": self.csms.status_of(kw["id_tag"])})

    @on(Action.meter_values)
    async def meter_values(self, **kw):
        self._log("MeterValues", **kw)
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def stop_tx(self, **kw):
        self._log("StopTransaction", **kw)
        return call_result.StopTransaction(id_tag_info={"status": "Accepted"})



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=9000)
    a = ap.parse_args(argv)
    csms = CentralSystem(a.port)
    print("CSMS on ws://127.0.0.1:%d/ocpp/<charger id>" % a.port, flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            for cid, action, kw in csms.calls[seen:]:
                print("%s %s %s" % (cid, action, kw if action != "StopTransaction" else {
                    k: v for k, v in kw.items() if k != "transaction_data"}), flush=True)
            seen = len(csms.calls)
    except KeyboardInterrupt:
        csms.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
