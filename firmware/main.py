# The board's entry point: MicroPython runs /main.py after boot.
from app.main import run

run()
