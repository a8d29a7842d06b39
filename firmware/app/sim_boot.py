# The simulated board's /main.py: read the scenario, let the boot selector (store/bootsel.py)
# pick the version under <data_dir>/ota, and run app.sim_main from it. Kept apart from
# app.sim_main so nothing of the image's app package stays loaded beside the chosen version's.
#
#   micropython -m app.sim_boot      stdin: as app.sim_main
import json
import sys

from store import bootsel


def main():
    sc = json.loads(sys.stdin.readline())
    bootsel.boot(sc["data_dir"] + "/ota", "app.sim_main").run(sc)


main()
