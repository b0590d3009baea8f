"""Files: atomic writes (a crash never leaves a half-written result), output files checked
before the work, locks, disk space, and the user cache folder.

Every OS error while writing becomes a :class:`~cl_spoof.errors.FileSystemError`
naming the file the user knows (not a temporary one) and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from cl_spoof.errors import FileSystemError, os_error_message


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it into place on success.

    The temporary file is removed if the block raises, so ``path`` is either
    the old content or the complete new one, never a truncated file. An
    :class:`OSError` (full disk, read-only folder...) becomes a
    :class:`FileSystemError` naming ``path``.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; keep normal permissions
        os.replace(tmp_path, path)
    except OSError as exc:
        raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            with contextlib.suppress(OSError):
                tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; move it into place on success.

    For commands whose result is a whole folder: ``path`` (which must not exist, or be
    empty) appears complete or not at all; the temporary folder is removed if the block
    raises (Ctrl-C included). An :class:`OSError` becomes a :class:`FileSystemError`
    naming ``path``.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent))
        yield tmp_path
        os.chmod(tmp_path, 0o777 & ~_umask())  # mkdtemp creates 0700
        os.replace(tmp_path, path)  # onto an empty folder too; never onto a full one
    except OSError as exc:
        raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            shutil.rmtree(tmp_path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def check_output_file(path: str | Path, what: str = "the scores") -> None:
    """Refuse, before any work, an output file that cannot be written: a folder, or a file
    in a folder that is missing and cannot be made, or is read-only (``what``: what the
    file is for, named when a folder is given)."""
    path = Path(path)
    if path.is_dir():
        raise FileSystemError(f"{path}: is a folder; give a file name for {what}")
    folder = path.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise FileSystemError(f"{path}: {probe} is a file, not a folder; check the path")
    if probe == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from None
    elif not os.access(probe, os.W_OK):
        raise FileSystemError(f"cannot write {path}: {probe} is not writable; choose a folder "
                              "you can write to")


def user_cache_dir() -> Path:
    """``$CL_SPOOF_CACHE_DIR``, else ``$XDG_CACHE_HOME/cl-spoof``, else ``~/.cache/cl-spoof``."""
    env = os.environ.get("CL_SPOOF_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cl-spoof"


READ_ONLY_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def file_lock(path: str | Path, optional: bool = False) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if absent) across processes.

    Other processes asking for the same lock wait (``fcntl.flock``); the lock
    goes away with the process, so a killed holder never blocks the others.
    Yields True. With ``optional``, a folder where the lock file cannot be made
    (read-only) yields False instead of failing: the caller may then only read.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        if optional and exc.errno in READ_ONLY_ERRORS:
            yield False
            return
        raise FileSystemError(f"cannot lock {os_error_message(exc, path)}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield True
    finally:
        os.close(fd)  # releases the lock


def ensure_free_space(folder: str | Path, needed: int, what: str) -> None:
    """Refuse to start writing ``needed`` bytes into ``folder`` when the disk lacks them."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise FileSystemError(
            f"{folder}: {what} needs {needed / 2**20:,.0f} MiB but only {free / 2**20:,.0f} MiB "
            "are free; free some space or choose a folder on another disk")


def reserve(path: str | Path, size: int) -> None:
    """Allocate the blocks of ``path`` up to ``size`` bytes now (``posix_fallocate``).

    A memory-mapped file whose blocks are missing kills the process with SIGBUS
    when the disk fills up while it is written; reserving them first turns that
    into an ordinary error here.
    """
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return  # a file system without fallocate: the space check above is all we have
        raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from exc
    finally:
        os.close(fd)
