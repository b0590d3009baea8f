"""Exceptions for user errors.

Library code raises these with a message that names the file, key or value at
fault; the CLI prints the message and exits with status 2 (no traceback).
"""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable


class CLSpoofError(Exception):
    """A problem the user can fix (bad input, bad config, bad data)."""


def suggestion(name: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``name`` (a typo, a different case), or None when none is close."""
    options = [str(c) for c in choices]
    by_lower = {c.lower(): c for c in options}
    if name.lower() in by_lower and by_lower[name.lower()] != name:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` to end an error line about the unknown ``name``, or ``""``."""
    best = suggestion(name, choices)
    return f"; did you mean {best!r}?" if best is not None and best != name else ""


class ConfigError(CLSpoofError):
    """An invalid configuration key or value."""


class DataError(CLSpoofError):
    """Unreadable, missing or inconsistent data."""


class FileSystemError(CLSpoofError):
    """A file or folder cl-spoof cannot read or write (full disk, permissions, ...)."""


_OS_HINTS = {
    errno.ENOSPC: "free some space there or choose a folder on another disk",
    errno.EDQUOT: "free some space there (disk quota exceeded) or choose another folder",
    errno.EFBIG: "the file is larger than this system allows; free space or choose another "
                 "folder",
    errno.EACCES: "check its permissions or choose a folder you can write to",
    errno.EPERM: "check its permissions or choose a folder you can write to",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.ENOENT: "check the path",
    errno.EISDIR: "it is a folder; give a file",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EEXIST: "it exists already; choose another name",
    errno.EMFILE: "too many open files; lower train.workers or raise the limit (ulimit -n)",
    errno.ENOMEM: "not enough memory; lower batch sizes, workers or data.num_samples",
}


def os_error_message(exc: OSError, path: object = None) -> str:
    """One line naming the path, what went wrong and what to do (``path`` overrides the
    file name the error carries)."""
    where = path if path is not None else (exc.filename if exc.filename is not None else None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno or -1)
    text = f"{where}: {reason}" if where is not None else reason
    return text + (f"; {hint}" if hint else "")
