"""A validator network on one machine, for tests, the bench and the fleet load: Mosquitto tuned
for many in-flight messages, PostgreSQL, and worker processes of one validator identity that
can be killed (SIGKILL) and restarted at any moment.

    broker = FleetBroker(workdir=d).start()
    net = ValidatorNetwork(d, store_dsn, "val-1", broker.host, broker.port, workers=2)
    net.prepare(chargers, tariff_json)     # enroll every charger, publish the tariff
    net.start()                            # worker processes, returns once all are subscribed
    net.kill(0); net.restart(0)
    net.stop()
"""
import os
import signal
import time

from host_tools.sim.broker import MosquittoBroker
from host_tools.validator import workers as workers_mod
from host_tools.validator.store import open_ledger
from host_tools.verify import formats


class FleetBroker(MosquittoBroker):
    """Anonymous Mosquitto for load tests: a worker may hold a whole batch unacknowledged
    (manual PUBACK after commit), so the in-flight window per client is raised from 20, and
    queued messages for a worker that is down are kept (the default drops beyond 1000)."""

    def command(self):
        cmd = MosquittoBroker.command(self)
        with open(self.conf, "a") as f:
            f.write("max_inflight_messages 500\nmax_queued_messages 0\n")
        return cmd


class ValidatorNetwork:
    def __init__(self, workdir, store, validator_id, host, port, workers=2, verify_procs=0,
                 batch_size=workers_mod.BATCH_SIZE, cosign=True, peers=()):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.store = store
        self.validator_id = validator_id
        self.host, self.port = host, port
        self.count = workers
        self.verify_procs = verify_procs
        self.batch_size = batch_size
        self.cosign_key = os.path.join(self.workdir, validator_id + ".key") if cosign else None
        self.peers = list(peers)
        self.procs = [None] * workers
        self.kills = 0

    def prepare(self, chargers, tariff_json):
        """Enroll the fleet's chargers and publish the tariff in the shared store."""
        text, tariff_hash = formats.tariff_canonical(tariff_json)
        with open_ledger(self.store) as db:
            db.add_tariff(tariff_hash, text)
            for c in chargers:
                db.enroll(c["charger_id"], c["pubkey_der"], origin=c["origin"])
        if self.cosign_key:
            from host_tools.validator import witness
            witness.load_cosigner(self.cosign_key, self.validator_id)

    def vkey(self):
        from host_tools.validator import witness
        return witness.load_cosigner(self.cosign_key, self.validator_id).vkey()

    def _ready(self, i):
        return os.path.join(self.workdir, "%s-w%d.ready" % (self.validator_id, i))

    def spawn(self, i):
        ready = self._ready(i)
        if os.path.exists(ready):
            os.unlink(ready)
        self.procs[i] = workers_mod.spawn_worker(
            self.store, self.validator_id, "w%d" % i, self.host, self.port, cosign_key=self.cosign_key,
            peers=self.peers, verify_procs=self.verify_procs, batch_size=self.batch_size,
            ready_file=ready, log_path=os.path.join(self.workdir, "%s-w%d.log" % (self.validator_id, i)))

    def wait_ready(self, i, timeout_s=60.0):
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(self._ready(i)):
            if self.procs[i].poll() is not None:
                raise RuntimeError("worker %d exited (%s): see %s" % (i, self.procs[i].returncode, self.workdir))
            if time.monotonic() > deadline:
                raise RuntimeError("worker %d not subscribed after %.0f s" % (i, timeout_s))
            time.sleep(0.05)

    def start(self):
        for i in range(self.count):
            self.spawn(i)
        for i in range(self.count):
            self.wait_ready(i)
        return self

    def kill(self, i):
        """SIGKILL worker i: no chance to finish anything it holds."""
        p = self.procs[i]
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            self.kills += 1

    def restart(self, i, wait=False):
        self.kill(i)
        self.spawn(i)
        if wait:
            self.wait_ready(i)

    def stop(self):
        for p in self.procs:
            if p is not None and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            if p is not None:
                try:
                    p.wait(timeout=20)
                except Exception:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
