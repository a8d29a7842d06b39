"""MQTT fixtures: real brokers (amqtt in-process, Mosquitto as a process) behind a fault proxy.

Each fixture yields a BrokerHandle: a dict with plain data, so firmware tests receive it on
both interpreters,

  {"host": "127.0.0.1", "port": <proxy port: the charger connects here>,
   "broker_port": <the broker itself: observers connect here>, "kind": "amqtt"|"mosquitto",
   "control": <control port>}

and methods for host tests (handle.control("broker stop")). Firmware tests drive the same
commands through the control port (tests/firmware/netctl.py): "broker stop|start|restart",
"proxy up|down|blackhole".
"""
import pytest

from host_tools.broker import AmqttBroker, MosquittoBroker
from host_tools.netfault import ControlServer, FaultProxy, control


class BrokerHandle(dict):
    def __init__(self, broker):
        self.broker = broker.start()
        self.proxy = FaultProxy(broker.host, broker.port).start()
        actions = {"broker stop": broker.stop, "broker start": broker.start,
                   "broker restart": broker.restart}
        for mode in ("up", "down", "blackhole"):
            actions["proxy " + mode] = (lambda m=mode: self.proxy.set_mode(m))
        self.ctl = ControlServer(actions).start()
        dict.__init__(self, host=broker.host, port=self.proxy.port, broker_port=broker.port,
                      kind=broker.kind, control=self.ctl.port)

    def control(self, command):
        control(self.ctl.port, command)

    def close(self):
        self.ctl.stop()
        self.proxy.stop()
        self.broker.stop()


@pytest.fixture
def amqtt_broker():
    handle = BrokerHandle(AmqttBroker())
    yield handle
    handle.close()


@pytest.fixture
def mosquitto_broker(tmp_path):
    handle = BrokerHandle(MosquittoBroker(workdir=str(tmp_path)))
    yield handle
    handle.close()


@pytest.fixture(params=["amqtt", "mosquitto"])
def mqtt_broker(request, tmp_path):
    if request.param == "amqtt":
        handle = BrokerHandle(AmqttBroker())
    else:
        handle = BrokerHandle(MosquittoBroker(workdir=str(tmp_path)))
    yield handle
    handle.close()
