"""The fuzzer's fixed-seed subset in the normal suite (`make fuzz` runs >= 10,000 inputs per
parser): a few hundred inputs per parser, host parsers under hypothesis, firmware parsers in
one MicroPython process. Every input must end in a return or the parser's own error."""
import shutil

import pytest

from host_tools.fuzz import device, host, seeds

INPUTS = 250
SEED = 20261128


@pytest.fixture(scope="module")
def work():
    path = seeds.workdir()
    found = seeds.host_seeds(path)
    yield path, found
    shutil.rmtree(path, ignore_errors=True)


def _report(r):
    return "%s: %d failures, e.g. %s" % (r["name"], r["failures"], r.get("examples"))


def test_host_parsers_survive_a_fixed_seed_subset(work):
    path, found = work
    results = host.run(INPUTS, SEED, path, found)
    assert {r["name"] for r in results} == {"validator_receipt", "validator_receipt_signed",
                                            "validator_checkpoint", "ocmf", "lightclient_bundle", "cli_inputs"}
    for r in results:
        assert r["inputs"] >= INPUTS * 0.9, r
        assert r["failures"] == 0, _report(r)


def test_firmware_parsers_survive_a_fixed_seed_subset_in_micropython(work):
    path, found = work
    results = device.run(INPUTS, SEED, path, found)
    assert {r["name"] for r in results} == set(device.TARGETS)
    for r in results:
        assert r["inputs"] == INPUTS, r
        assert r["failures"] == 0, _report(r)
