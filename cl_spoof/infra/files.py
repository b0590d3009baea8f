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
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from cl_spoof.errors import FileSystemError, os_error_message
from cl_spoof.infra.formats import FILE_NAME_ERRORS


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
    """Write ``text`` to ``path`` atomically (UTF-8; a file name that is not UTF-8 is
    written as its own bytes, :data:`~cl_spoof.infra.formats.FILE_NAME_ERRORS`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=FILE_NAME_ERRORS)


def atomic_write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def check_output_file(path: str | Path, what: str = "the scores", *, force: bool = False,
                      inputs: Iterable[str | Path] = (),
                      guard: Callable[[Path], str | None] | None = None) -> None:
    """Refuse, before any work, an output file that cannot or must not be written.

    Cannot: a folder, or a file in a folder that is missing and cannot be made, or is
    read-only (``what``: what the file is for, named when a folder is given). Must not,
    even with ``force``: one of ``inputs`` by any of its names (a symbolic or hard link
    to it), or a file for which ``guard`` gives a reason (e.g. inside a run directory).
    Must not without ``force``: a file that exists.
    """
    path = Path(path)
    if path.is_dir():
        raise FileSystemError(f"{path}: is a folder; give a file name for {what}")
    folder = path.parent
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise FileSystemError(f"{path}: {probe} is a file, not a folder; check the path")
    if guard is not None:
        reason = guard(path)
        if reason:
            raise FileSystemError(f"{path}: {reason}; cl-spoof never writes there (not even "
                                  "with --force): choose a file outside it")
    if os.path.lexists(path):
        same = same_file_as(path, inputs)
        if same is not None:
            shown = "" if Path(same) == path else f" ({same})"
            raise FileSystemError(f"{path}: is an input of this command{shown}; cl-spoof never "
                                  "overwrites an input (not even with --force): choose "
                                  "another file")
        if not force:
            raise FileSystemError(f"{path}: exists; give --force to replace it, or choose "
                                  "another file (nothing was written)")
    if probe == folder:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise FileSystemError(f"cannot write {os_error_message(exc, path)}") from None
    elif not os.access(probe, os.W_OK):
        raise FileSystemError(f"cannot write {path}: {probe} is not writable; choose a folder "
                              "you can write to")


def same_file_as(path: str | Path, candidates: Iterable[str | Path]) -> str | Path | None:
    """The first of ``candidates`` that is the file at ``path`` by any name (the same
    resolved path, or the same device and inode: a symbolic or hard link), else None."""
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    real = os.path.realpath(path)
    for cand in candidates:
        if os.path.realpath(cand) == real:
            return cand
        if st is not None:
            try:
                other = os.stat(cand)
            except OSError:
                continue
            if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
                return cand
    return None


def not_a_regular_file(path: str | Path, what: str = "a file") -> str | None:
    """What ``path`` is when it is not a regular file that can be opened for reading —
    absent, a dangling symbolic link, a folder, a named pipe (FIFO), a device, a socket —
    else None (``what``: what it should have been, e.g. ``an audio file``).

    It is never opened: opening a FIFO for reading blocks until a writer comes, and a
    device such as ``/dev/zero`` never ends.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return "file not found"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link that leads back to itself"
        return f"cannot be read ({exc.strerror})"
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return None
    target = f" ({os.path.realpath(path)})" if os.path.islink(path) else ""
    if stat.S_ISDIR(mode):
        kind = "a folder"
    elif stat.S_ISFIFO(mode):
        return f"a named pipe (FIFO){target}, not {what}; not opened"
    elif stat.S_ISCHR(mode):
        kind = "a character device"
    elif stat.S_ISBLK(mode):
        kind = "a block device"
    elif stat.S_ISSOCK(mode):
        kind = "a socket"
    else:
        kind = "not a regular file"
    return f"{kind}{target}, not {what}"


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
        shown_needed, shown_free = format_size(needed), format_size(free)
        if shown_needed == shown_free:  # rounding would hide the difference: show bytes
            shown_needed, shown_free = _bytes(needed), _bytes(free)
        raise FileSystemError(
            f"{folder}: {what} needs {shown_needed} but only {shown_free} are free; free some "
            "space or choose a folder on another disk")


def _bytes(n: int) -> str:
    return f"{n:,} byte" + ("" if n == 1 else "s")


def format_size(n: int) -> str:
    """``n`` bytes for people: exact below 1 KiB (``1,023 bytes``), else one decimal in
    the largest binary unit it reaches (``1.5 KiB``, ``5.0 MiB``)."""
    if n < 1024:
        return _bytes(n)
    value = float(n)
    units = ["KiB", "MiB", "GiB", "TiB", "PiB"]
    while True:
        value /= 1024
        if value < 1024 or len(units) == 1:
            return f"{value:,.1f} {units[0]}"
        units.pop(0)


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
