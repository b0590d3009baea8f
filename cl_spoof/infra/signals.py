"""Stopping on Ctrl-C and SIGTERM: one clean stop, whatever arrives next.

:func:`install_stop_handlers` (the command line calls it) makes SIGINT and SIGTERM
raise :class:`Stopped` (a :class:`KeyboardInterrupt`, so everything that cleans up
after Ctrl-C cleans up after SIGTERM too: what ``timeout``, Slurm and ``docker stop``
send). Only the first signal stops; later ones are ignored while the command shuts
down, so a second Ctrl-C cannot cut a rollback short. Code in :func:`critical`
(putting a folder back, moving its undo folder away) is never interrupted: a signal
arriving there stops the command when the section ends.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

#: Exit status of a command stopped by each signal (128 + the signal's number).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Stopped(KeyboardInterrupt):
    """The command was asked to stop (``signum``: SIGINT for Ctrl-C, or SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_state = {"stopping": False, "critical": 0, "deferred": 0}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _state["stopping"]:
        return  # already stopping: let the shutdown finish
    _state["stopping"] = True
    if _state["critical"]:
        _state["deferred"] = signum
        return
    raise Stopped(signum)


def install_stop_handlers() -> None:
    """SIGINT and SIGTERM stop the command once (see the module docstring); a signal the
    process was started ignoring (``nohup``, a background job) stays ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _on_signal)


def stop_code(exc: BaseException | None) -> int:
    """The exit status of a command stopped by ``exc`` (130 for Ctrl-C, or when unknown)."""
    return EXIT_CODES.get(getattr(exc, "signum", signal.SIGINT), 130)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A section a stop signal does not interrupt: it stops the command when the
    section ends."""
    _state["critical"] += 1
    try:
        yield
    finally:
        _state["critical"] -= 1
        if not _state["critical"] and _state["deferred"]:
            signum, _state["deferred"] = _state["deferred"], 0
            raise Stopped(signum)
