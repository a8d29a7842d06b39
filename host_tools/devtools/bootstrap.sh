#!/usr/bin/env bash
# Sets up everything `make test`, `make bench` and `make demo` need, on a fresh machine:
#   - Debian packages: socat (serial ptys for the Modbus wire), mosquitto (the real broker),
#     postgresql (the validators' shared store; tests run their own server),
#     make and gcc-multilib (the 32-bit "virtual ESP32" MicroPython, host_tools/devtools/mp32.py)
#     chromium + chromium-driver (browser tests of the dashboard and the driver's check)
#   - a virtualenv at .venv with the host packages of requirements.txt and this project's CLI
#   - umqtt.simple for the firmware, unpacked from PyPI's sdist into .venv/mplib
# Idempotent: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-python3}
need_apt=()
# A minimal Debian has no python3, and Debian's python3 has no venv/ensurepip without python3-venv.
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
# PostgreSQL: the validators' shared store at scale (tests start a throw-away server with initdb).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v make >/dev/null 2>&1 || need_apt+=(make)
# gcc -m32 needs the i386 C library and libgcc: Debian's gcc-multilib brings both (and gcc).
dpkg -s gcc-multilib >/dev/null 2>&1 || need_apt+=(gcc-multilib)
# The browser tests and screenshots: a real headless Chromium driven through chromedriver.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 13), sys.version' || {
    echo "bootstrap: needs CPython 3.11-3.13 (ocpp needs 3.11; the MicroPython unix port's wheels stop at 3.13; set PYTHON=...)" >&2
    exit 1; }
if [ ! -x .venv/bin/pip ]; then          # also repairs a venv left half-made by a failed run
    echo "bootstrap: creating .venv"
    rm -rf .venv
    "$PYTHON" -m venv .venv
fi
stamp=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.requirements.stamp 2>/dev/null)" != "$stamp" ]; then
    echo "bootstrap: installing Python packages"
    .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
    .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
    echo "$stamp" > .venv/.requirements.stamp
fi

# umqtt.simple: PyPI has it only as an sdist pip will not install (no setup.py);
# `pip download --no-clean` leaves it unpacked, and we keep the module file.
if [ ! -f .venv/mplib/umqtt/simple.py ]; then
    echo "bootstrap: fetching umqtt.simple for the firmware"
    tmp=$(mktemp -d)
    # pip unpacks it, then refuses to build it (no setup.py): that refusal is expected.
    TMPDIR=$tmp .venv/bin/pip download --no-deps --no-clean -d "$tmp/dl" \
        micropython-umqtt.simple==1.3.4 >"$tmp/pip.log" 2>&1 || true
    src=$(find "$tmp" -path '*umqtt/simple.py' | head -1)
    [ -n "$src" ] || { cat "$tmp/pip.log" >&2; echo "bootstrap: could not fetch umqtt.simple" >&2; exit 1; }
    mkdir -p .venv/mplib/umqtt
    cp "$src" .venv/mplib/umqtt/simple.py
    : > .venv/mplib/umqtt/__init__.py
    rm -rf "$tmp"
fi
