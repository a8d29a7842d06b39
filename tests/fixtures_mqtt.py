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


# ---- signed operator commands, made on the host with `cryptography` ------------------------
COMMAND_T0 = 1800000000          # the charger clock the command tests inject


@pytest.fixture(scope="session")
def operator_commands():
    """Commands signed by a fresh operator key (and some that must fail), as plain strings."""
    from host_tools import operator_cmd as op
    key, other = op.generate_key(), op.generate_key()
    cp, t0 = "CP-T1", COMMAND_T0

    def signed(cmd, args=None, n=10, exp=t0 + 300, charger=cp, k=key):
        return op.sign(k, charger, cmd, args, n=n, exp=exp).decode()

    stop = signed("stop")
    payload = stop.rsplit("|", 1)[0]
    msgs = {
        "stop_n10": stop,
        "limit_n11": signed("current_limit", {"ma": 16000}, n=11),
        "tariff_n12": signed("tariff", {"tariff": '{"id":"t1","per_kwh":3900}'}, n=12),
        "reserve_n13": signed("reserve", {"id_tag": "04A2B3C4", "until": t0 + 900}, n=13),
        "older_n5": signed("start", {"id_tag": "04A2B3C4"}, n=5),
        "expired_n20": signed("stop", n=20, exp=t0 - 1),
        "unsigned": payload,
        "unsigned_bar": payload + "|",
        "forged": payload.replace('"stop"', '"start"') + "|" + stop.rsplit("|", 1)[1],
        "other_key": signed("stop", n=30, k=other),
        "sig_not_hex": payload + "|zz12",
        "sig_not_der": payload + "|" + "ab" * 70,
        "not_json": "hello|" + stop.rsplit("|", 1)[1],
        "garbage_unsigned": "hello",
        "bad_args": signed("current_limit", {"ma": 100}, n=40),
        "extra_arg": signed("stop", {"force": 1}, n=41),
        "unknown": signed("self_destruct", n=42),
        "wrong_charger": signed("stop", n=43, charger="CP-OTHER"),
        "no_counter": op.sign_payload(key, b'{"charger":"CP-T1","cmd":"stop","exp":%d}'
                                      % (t0 + 300)).decode(),
    }
    return {"charger": cp, "t0": t0, "operator_spki": op.public_spki_hex(key), "msgs": msgs}
