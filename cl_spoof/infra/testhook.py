"""A test hook: pause at a named point so a test can signal or kill the process there.

With ``CL_SPOOF_TEST_PAUSE=name[,name...]`` and ``CL_SPOOF_TEST_PAUSE_FILE=path`` in the
environment, :func:`pause_point` writes ``name pid`` to ``path`` when it reaches one of
the named points and waits (at most two minutes) until the test removes the file.
Without them it does nothing; users never set them.
"""

from __future__ import annotations

import os
import time


def pause_point(name: str) -> None:
    """Pause here when a test asked for point ``name`` (see the module docstring)."""
    wanted = os.environ.get("CL_SPOOF_TEST_PAUSE")
    flag = os.environ.get("CL_SPOOF_TEST_PAUSE_FILE")
    if not wanted or not flag or name not in wanted.split(","):
        return
    tmp = f"{flag}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(f"{name} {os.getpid()}\n")
    os.replace(tmp, flag)
    deadline = time.monotonic() + 120
    while os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
