# The fields of a closed session's receipt (ledger.log.record() builds the OCMF record and the
# log leaf from them).

# Stop reason -> OCMF TX of the end reading (E end, L local, R remote, A abort, P power loss).
END_TX = {"ev-unplugged": "E", "user": "L", "remote": "R", "power-loss": "P",
          "segment-limit": "L"}


def receipt_fields(cfg, s, clock_status, currency):
    """cfg: the charger's configuration; s: the closed session (end and price fixed);
    clock_status: the clock's OCMF status letter; currency: the tariff's."""
    reason = s["reason"] or "ev-unplugged"
    net, tax, total = s["price"]
    fields = {
        "seq": s["seq"], "charger_id": cfg["charger_id"],
        "meter_model": cfg["meter_model"], "meter_serial": cfg["meter_serial"],
        "user_id": s["id"], "user_id_type": s["id_type"],
        "begin_wh": s["begin_wh"], "end_wh": s["end_wh"],
        "begin_time": s["begin_time"], "end_time": s["end_time"],
        "charge_end_time": s["charge_end"], "clock_status": clock_status,
        "segments": s["segments"], "tariff": s["tariff"],
        "net_minor": net, "tax_minor": tax, "price_minor": total,
        "currency": currency, "stop_reason": reason, "end_tx": END_TX.get(reason, "A"),
        "firmware": cfg.get("firmware_version", "0"),    # OCMF GV: the running version
    }
    if cfg["evse_id"]:
        fields["evse_id"] = cfg["evse_id"]
    return fields
