# ChargeProof: every target sets up what it needs itself (host_tools/devtools/bootstrap.sh).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bootstrapped

.PHONY: setup lint test test-firmware bench fuzz fleet-load demo mpy esp32-image clean


$(STAMP): requirements.txt pyproject.toml host_tools/devtools/bootstrap.sh
	bash host_tools/devtools/bootstrap.sh
	touch $@

setup: $(STAMP)

## style and types: ruff over the tree (rules in pyproject.toml), mypy over the validators'
## independent checks and the validator (host_tools/verify, host_tools/validator)
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy host_tools/verify host_tools/validator

## the whole suite: lint, then firmware tests on CPython and MicroPython, host tests
test: $(STAMP) lint
	$(PY) -m pytest tests

test-firmware: $(STAMP)
	$(PY) -m pytest tests/firmware

## benchmarks: prints a table and writes bench/results.json
bench: $(STAMP)
	$(PY) -m host_tools.bench

## fuzzing: >= 10,000 inputs per parser (host: hypothesis; firmware: one MicroPython process),
## rows into bench/results.json; fails on any unexpected exception or an input slower than 100 ms
fuzz: $(STAMP)
	$(PY) -m host_tools.fuzz

## the validator network under a city's load: 10,000 simulated chargers through Mosquitto ->
## validator workers -> PostgreSQL (also part of `make bench`; CP_FLEET_CHARGERS=N to shrink)
fleet-load: $(STAMP)
	$(PY) -m host_tools.bench fleet

## the main job: a simulated charger fleet with its validator, on embedded defaults
demo: $(STAMP)
	$(PY) -m host_tools.demo $(if $(OCPP),--ocpp $(OCPP))

## the README's screenshots, made by the browser tests (headless Chromium) on a demo fleet
screenshots: $(STAMP)
	CHARGEPROOF_SCREENSHOTS=$(CURDIR)/docs/screenshots $(PY) -m pytest tests/host/web -q

## compile every firmware file with mpy-cross into build/mpy (what goes onto the board)
mpy: $(STAMP)
	$(PY) -m host_tools.devtools.build_mpy

## an ESP32 MicroPython image with the firmware frozen in (needs ESP-IDF and MICROPY_DIR;
## cannot run on the CI machines: see host_tools/devtools/esp32_image.sh)
esp32-image:
	bash host_tools/devtools/esp32_image.sh

clean:
	rm -rf build demo-out bench/results.json .pytest_cache
