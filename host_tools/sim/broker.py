"""MQTT brokers for tests, the simulator and the bench.

AmqttBroker is the zero-set-up default: amqtt runs in-process on a loopback port, in its own
thread with its own asyncio loop, so synchronous code (pytest, the simulator) can start, stop
and restart it. MosquittoBroker runs the real Mosquitto 2 (installed by bootstrap.sh) with a
generated config. Both keep their port across stop()/start(), so a charger reconnects to the
same address after a broker restart.

Standalone: python -m host_tools.sim.broker --port 1883 [--mosquitto]
"""
import argparse
import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

LOOPBACK = "127.0.0.1"


def free_port(host=LOOPBACK):
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(host, port, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("nothing listens on %s:%d after %.0f s" % (host, port, timeout_s))
            time.sleep(0.02)


class AmqttBroker:
    """amqtt in a background thread. start()/stop() may be called repeatedly.

    roster (host_tools.provision.broker_conf.Roster, passwords set): logins from a password
    file and the deployment's ACL (deploy/mosquitto/acl.template) expanded per login; anonymous
    refused. amqtt cannot bind client ids to logins (Mosquitto's use_username_as_clientid)."""
    kind = "amqtt"

    def __init__(self, host=LOOPBACK, port=None, roster=None, workdir=None):
        self.host = host
        self.port = port or free_port(host)
        self.roster = roster
        self._auth = None
        if roster is not None:
            from host_tools.provision import broker_conf
            workdir = workdir or tempfile.mkdtemp(prefix="cp-amqtt-")
            os.makedirs(workdir, exist_ok=True)
            passwd = os.path.join(workdir, "amqtt-passwd")
            broker_conf.write_amqtt_password_file(passwd, roster.passwords)
            publish, subscribe = broker_conf.amqtt_acl(roster)
            self._auth = {
                "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": passwd},
                "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
                    "publish_acl": publish, "acl": subscribe}}
        self._loop = None
        self._thread = None
        self._broker = None
        # amqtt logs every packet at INFO; keep test and demo output readable.
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)

    def _config(self):
        plugins = self._auth or {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        return {
            "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (self.host, self.port)}},
            "plugins": plugins,
        }

    @property
    def running(self):
        return self._thread is not None

    def start(self):
        if self._thread:
            return self
        from amqtt.broker import Broker
        ready = threading.Event()
        failure = []
        self._loop = asyncio.new_event_loop()

        def main():
            asyncio.set_event_loop(self._loop)

            async def boot():
                self._broker = Broker(self._config(), loop=self._loop)
                await self._broker.start()
            try:
                self._loop.run_until_complete(boot())
            except Exception as exc:   # reported to start()'s caller below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="amqtt:%d" % self.port, daemon=True)
        self._thread.start()
        ready.wait(15)
        if failure:
            self._thread = None
            raise RuntimeError("amqtt did not start on port %d: %s" % (self.port, failure[0]))
        return self   # Broker.start() returns once its listener is bound

    def stop(self):
        if not self._thread:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(15)
        except Exception as exc:      # amqtt's shutdown can hang with clients attached
            logging.getLogger("amqtt").warning("amqtt shutdown did not finish: %r", exc)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._loop.close()
            self._thread = None
            self._broker = None

    def restart(self):
        self.stop()
        return self.start()

    def info(self):
        return {"host": self.host, "port": self.port, "kind": self.kind}


class _BrokerProcess:
    """A broker in its own process: stop() is a crash (SIGTERM, then SIGKILL) that no
    connected client can delay. Subclasses give the command line."""
    kind = None

    def __init__(self, host=LOOPBACK, port=None):
        self.host = host
        self.port = port or free_port(host)
        self._proc = None

    def command(self):
        raise NotImplementedError

    @property
    def running(self):
        return self._proc is not None

    def start(self):
        if self._proc:
            return self
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        try:
            wait_listening(self.host, self.port)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self):
        if not self._proc:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._proc = None

    def restart(self):
        self.stop()
        return self.start()

    def info(self):
        return {"host": self.host, "port": self.port, "kind": self.kind}


class AmqttProcess(_BrokerProcess):
    """amqtt in its own process (this module's main). amqtt's in-process shutdown can hang
    while clients are connected, so tests that take the broker away mid-run use this one."""
    kind = "amqtt"

    def command(self):
        return [sys.executable, "-m", "host_tools.sim.broker", "--host", self.host,
                "--port", str(self.port)]


MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto():
    for path in MOSQUITTO_PATHS:
        if os.path.exists(path):
            return path
    return shutil.which("mosquitto")


class MosquittoBroker(_BrokerProcess):
    """A Mosquitto 2 process on one loopback listener.

    Without a roster: anonymous, no ACL (the firmware's and validator's functional tests).
    With a roster (host_tools.provision.broker_conf.Roster, passwords set): the deployment's
    own configuration, deploy/mosquitto/mosquitto.conf and acl.template, with its files in
    workdir: logins from a password file made by mosquitto_passwd, the ACL, client id = login,
    anonymous refused. tls: {"cafile", "certfile", "keyfile"} (PEM paths) makes the listener
    TLS-only."""
    kind = "mosquitto"

    def __init__(self, host=LOOPBACK, port=None, workdir=None, roster=None, tls=None):
        self.exe = find_mosquitto()
        if not self.exe:
            raise RuntimeError("mosquitto not installed: run bash host_tools/devtools/bootstrap.sh")
        _BrokerProcess.__init__(self, host, port)
        self.workdir = workdir or tempfile.mkdtemp(prefix="cp-mosquitto-")
        self.conf = os.path.join(self.workdir, "mosquitto.conf")
        self.log = os.path.join(self.workdir, "mosquitto.log")
        self.roster = roster
        self.tls = tls
        if roster is not None:
            self._write_secure_config()
        elif tls is not None:
            raise ValueError("a TLS broker here always has logins: give a roster")

    def _write_secure_config(self):
        from host_tools.provision import broker_conf
        os.makedirs(self.workdir, exist_ok=True)
        if self.tls:
            for src, name in ((self.tls["cafile"], "ca.crt"), (self.tls["certfile"], "server.crt"),
                              (self.tls["keyfile"], "server.key")):
                if os.path.abspath(src) != os.path.join(os.path.abspath(self.workdir), name):
                    shutil.copyfile(src, os.path.join(self.workdir, name))
        broker_conf.write_config(self.workdir, self.roster, port=self.port, bind=self.host,
                                 tls=bool(self.tls), persistence=False, log=self.log,
                                 run_as="root" if os.geteuid() == 0 else None)

    def command(self):
        if self.roster is not None:
            return [self.exe, "-c", self.conf]
        with open(self.conf, "w") as f:
            f.write("listener %d %s\nallow_anonymous true\npersistence false\n"
                    "log_dest file %s\nlog_type error\nlog_type warning\nlog_type notice\n"
                    % (self.port, self.host, self.log))
        return [self.exe, "-c", self.conf]


def make_broker(kind="amqtt", **kwargs):
    return {"amqtt": AmqttBroker, "amqtt-process": AmqttProcess,
            "mosquitto": MosquittoBroker}[kind](**kwargs)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Run an MQTT broker on a loopback port.")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--host", default=LOOPBACK)
    ap.add_argument("--mosquitto", action="store_true", help="run Mosquitto instead of amqtt")
    args = ap.parse_args(argv)
    broker = make_broker("mosquitto" if args.mosquitto else "amqtt", host=args.host, port=args.port)
    broker.start()
    print("%s broker on %s:%d (Ctrl-C stops)" % (broker.kind, broker.host, broker.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
