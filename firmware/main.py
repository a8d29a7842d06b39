# The board's entry point: MicroPython runs /main.py after boot. The boot selector picks the
# application version (an update on trial, rolled back by itself if it fails: store/bootsel.py)
# before the app is imported.
from store import bootsel

bootsel.boot("/ota").run()
