# Runs one firmware test function inside MicroPython: mp_run.py <module> <function> <json kwargs>.
# Prints MP-TEST-PASSED on success; on failure prints the traceback and exits 1.
import sys
import json


def main():
    module_name, func_name, kwargs_json = sys.argv[1], sys.argv[2], sys.argv[3]
    if kwargs_json == "-":          # long arguments come on stdin (see conftest.run_micropython)
        kwargs_json = sys.stdin.read()
    module = __import__(module_name)
    func = getattr(module, func_name)
    kwargs = json.loads(kwargs_json)
    try:
        func(**kwargs)
    except BaseException as exc:  # report every failure, assertion or crash, then fail
        sys.print_exception(exc)
        sys.exit(1)
    print("MP-TEST-PASSED")


main()
