"""The broker configuration tool and the charger's broker settings, without a broker: the ACL
made from deploy/mosquitto/acl.template, roster checks, and deploy's merge of the login and
the CA into the configuration the firmware's own loader accepts."""
import json

import pytest

from host_tools import mqtt_conn
from host_tools.paths import DEFAULT_BOARD, firmware_on_path
from host_tools.provision import broker_conf, deploy, pki


def test_acl_has_one_block_per_validator_and_operator_and_charger_patterns():
    roster = broker_conf.Roster(["CP-1"], ["val-a", "val-b"], ["operator"])
    text = broker_conf.acl_text(roster)
    assert "pattern write cp/%u/receipt/+" in text and "pattern read cp/%u/ack/+" in text
    assert "user val-a\n" in text and "topic write cp/+/ack/val-a\n" in text
    assert "topic write cp/+/ack/val-b\n" in text and "VALIDATOR" not in text
    assert text.count("topic write cp/+/cmd\n") == 1                  # the operator alone
    assert "user CP-1" not in text          # chargers need no block: the patterns cover them


@pytest.mark.parametrize("roster", [
    broker_conf.Roster(["CP-1"], ["CP-1"], ["operator"]),               # a validator named as a charger
    broker_conf.Roster(["CP-1"], ["val-a"], ["val-a"]),
    broker_conf.Roster(["CP 1"], [], ["operator"]),                     # not one topic level
    broker_conf.Roster(["cp/+"], [], ["operator"]),
])
def test_roster_with_a_login_in_two_roles_or_not_a_topic_level_is_refused(roster):
    with pytest.raises(broker_conf.RosterError):
        broker_conf.acl_text(roster)


def test_amqtt_acl_is_the_same_rules_expanded_per_login():
    publish, subscribe = broker_conf.amqtt_acl(broker_conf.Roster(["CP-1", "CP-2"], ["val-a"], ["operator"]))
    assert "cp/CP-1/receipt/+" in publish["CP-1"] and "cp/CP-2/receipt/+" not in publish["CP-1"]
    assert "cp/CP-1/ack/+" in subscribe["CP-1"] and publish["val-a"].count("cp/+/ack/val-a") == 1
    assert not [t for t in publish["val-a"] + publish["CP-1"] if t.endswith("/cmd")]
    assert "cp/+/cmd" in publish["operator"]


def test_conf_from_the_template_points_at_its_directory(tmp_path):
    text = broker_conf.conf_text(tmp_path, port=18883, bind="127.0.0.1", tls=True, persistence=False)
    assert "listener 18883 127.0.0.1" in text and "allow_anonymous false" in text
    assert "password_file %s/passwd" % tmp_path in text and "\npassword_file /etc" not in text
    assert "use_username_as_clientid true" in text and "certfile %s/server.crt" % tmp_path in text
    # the client-id binding is a listener option: it must follow the listener line
    assert text.index("listener ") < text.index("use_username_as_clientid")
    plain = broker_conf.conf_text(tmp_path, tls=False)
    assert "certfile" not in plain and "allow_anonymous false" in plain


def test_deploy_merges_login_and_ca_into_a_config_the_firmware_accepts(tmp_path):
    ca = pki.make_ca("t")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    (tmp_path / "cfg.json").write_text(json.dumps({"charger_id": "CP-1", "meter_serial": "M1"}))
    out = deploy.with_mqtt(str(tmp_path / "cfg.json"), "CP-1", "s3cret", str(tmp_path / "ca.crt"),
                           "broker.lan", out_path=str(tmp_path / "merged.json"))
    assert (tmp_path / "merged.json").stat().st_mode & 0o077 == 0      # it holds a password
    firmware_on_path()
    from app import config
    from app.board import load_board
    cfg = config.load(load_board(str(DEFAULT_BOARD)), out)
    assert cfg["mqtt_user"] == "CP-1" and cfg["mqtt_password"] == "s3cret" and cfg["mqtt_tls"]
    assert bytes.fromhex(cfg["mqtt_ca"]) == ca.cert_der()
    tls = config.mqtt_tls(cfg)
    assert tls.server_hostname == "broker.lan" and tls.ca == ca.cert_der()
    assert config.mqtt_tls(dict(cfg, mqtt_tls=False)) is None
    assert deploy.with_mqtt(str(tmp_path / "cfg.json")) == str(tmp_path / "cfg.json")


def test_config_refuses_tls_without_a_ca_and_a_bad_login():
    firmware_on_path()
    from app import config
    from app.board import load_board
    board = load_board(str(DEFAULT_BOARD))
    base = {"charger_id": "CP-1", "meter_serial": "M1"}
    for bad in ({"mqtt_tls": True}, {"mqtt_tls": True, "mqtt_ca": "zz" * 40},
                {"mqtt_user": ""}, {"mqtt_user": 7}, {"mqtt_password": None}):
        with pytest.raises(config.ConfigError):
            config.load(board, None, dict(base, **bad))


def test_charger_config_from_a_spec(tmp_path):
    ca = pki.make_ca("t")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem())
    spec = mqtt_conn.BrokerSpec("broker.lan", 8883, "CP-1", "pw", cafile=str(tmp_path / "ca.crt"))
    cfg = mqtt_conn.charger_config(spec)
    assert cfg["mqtt_ca"] == ca.cert_der().hex() and cfg["mqtt_tls"] and cfg["mqtt_port"] == 8883
    assert "pw" not in repr(spec)
    with pytest.raises(ValueError):
        mqtt_conn.charger_config(mqtt_conn.BrokerSpec(tls=True))     # a charger has no system CAs
