# What MicroPython has built in and CPython lacks, defined once for every layer above.
# const(): MicroPython's compiler folds `X = const(n)` itself (the name is what it looks for);
# on CPython it is the identity.
try:
    from micropython import const
except ImportError:
    def const(x):
        return x
