"""Fails with NUL bytes in its error message and its log: stored readable, never refused."""

import sys


def _fail() -> None:
    sys.stderr.write("log line with a NUL \x00 byte\n")
    raise RuntimeError("broken \x00 model \x00 file")


_fail()
entire_model = None
