"""Files: atomic writes (a crash never leaves a half-written result), output files checked
before the work, locks (cache entries; a folder's one owner and its readers), disk space,
and the user cache folder.

Every OS error while writing becomes a :class:`~cl_spoof.errors.FileSystemError`
naming the file the user knows (not a temporary one) and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cl_spoof.errors import CLSpoofError, FileSystemError, os_error_message
from cl_spoof.infra.formats import FILE_NAME_ERRORS
from cl_spoof.infra.testhook import pause_point


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


class FolderInUseError(CLSpoofError):
    """Another command owns the folder (its owner lock is held); names the holder."""


@dataclass
class _Hold:
    fd: int
    exclusive: bool
    count: int = 1


#: The locks this process holds, by the real path of what is locked: taking one again is
#: re-entrant (``flock`` would block on a second open file of the same process).
_HELD: dict[str, _Hold] = {}


def holds_lock(path: str | Path) -> bool:
    """Whether this process holds the owner lock ``path`` (:func:`owner_lock`)."""
    return os.path.realpath(path) in _HELD


def _holder(fd: int) -> str:
    """Who holds an owner lock, as its holder wrote it in the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return (f"`cl-spoof {info['command']}`, pid {int(info['pid'])} on "
                f"{info['host']}, started {info['started']}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "a command that has not said who it is yet"


def _write_holder(fd: int, command: str) -> None:
    info = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    data = json.dumps(info).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not one removed while we waited)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _lock_owner(path: Path, command: str, wait: bool | None, what: Path,
                create: bool = False) -> int | None:
    """Open and lock ``path`` exclusively; the file descriptor, or None when ``wait`` is
    None (only try) and the lock is held or cannot be made. ``create``: make its folder
    again if it went away while we waited."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            if wait is None:
                return None
            if exc.errno == errno.ENOENT and create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    continue
                except OSError:
                    pass
            if exc.errno == errno.ENOENT and not path.parent.exists():
                raise FileSystemError(f"{what}: removed (by the command this one waited "
                                      "for?); check the path") from None
            raise FileSystemError(f"cannot change {what}: "
                                  f"{os_error_message(exc, path.parent)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                holder = _holder(fd)
                os.close(fd)
                if wait is None:
                    return None
                raise FolderInUseError(f"{what}: in use by {holder}; run this command when "
                                       "that one has finished, or add --wait to wait for it"
                                       ) from None
            try:
                pause_point("owner:waiting")
                fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # removed while we waited (a folder rolled back): lock the new one


@contextlib.contextmanager
def owner_lock(path: str | Path, command: str, wait: bool = False,
               what: str | Path | None = None, create: bool = False) -> Iterator[None]:
    """Hold the exclusive owner lock ``path`` (a lock file, created if absent) for
    ``command``, for as long as the block runs.

    Another process holding it: :class:`FolderInUseError` at once naming the holder
    (its command, pid, host and start time, which the holder writes into the lock
    file), or, with ``wait``, wait until it is released. Re-entrant within a process.
    The lock goes with the process, so a killed holder never blocks the others. A lock
    file that cannot be written (a read-only folder) is a :class:`FileSystemError`
    naming ``what`` (default: the lock file's folder) before any work is done.
    ``create``: a folder that goes away while this one waits (its creator failed and
    removed it) is made again.
    """
    path = Path(path)
    key = os.path.realpath(path)
    held = _HELD.get(key)
    if held is not None:
        held.count += 1
        try:
            yield
        finally:
            held.count -= 1
        return
    fd = _lock_owner(path, command, wait, Path(what) if what is not None else path.parent,
                     create)
    assert fd is not None
    _HELD[key] = _Hold(fd, exclusive=True)
    try:
        try:
            _write_holder(fd, command)
        except OSError as exc:
            raise FileSystemError(f"cannot change {what or path.parent}: "
                                  f"{os_error_message(exc, path.parent)}") from None
        yield
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # released: nobody to name
        os.close(fd)


@contextlib.contextmanager
def try_owner_lock(path: str | Path, command: str) -> Iterator[bool]:
    """:func:`owner_lock` if it is free and can be made now (yields True), else nothing
    held (yields False): for a reader that would repair a folder only when nobody owns it."""
    path = Path(path)
    if holds_lock(path):
        with owner_lock(path, command):
            yield True
        return
    fd = _lock_owner(path, command, None, path.parent)
    if fd is None:
        yield False
        return
    key = os.path.realpath(path)
    _HELD[key] = _Hold(fd, exclusive=True)
    try:
        with contextlib.suppress(OSError):
            _write_holder(fd, command)
        yield True
    finally:
        del _HELD[key]
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str | Path, exclusive: bool) -> Iterator[bool]:
    """Lock the folder itself (``flock`` on the directory): exclusive while its files
    change, shared while they are read, so a reader never sees half of a change.

    Waits for the lock; re-entrant within a process (shared inside exclusive too).
    Yields False, holding nothing, when the folder cannot be opened (absent: nothing to
    read or guard).
    """
    key = "folder:" + os.path.realpath(folder)
    held = _HELD.get(key)
    if held is not None:
        if exclusive and not held.exclusive:
            raise RuntimeError(f"{folder}: a shared lock cannot become exclusive")
        held.count += 1
        try:
            yield True
        finally:
            held.count -= 1
        return
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    _HELD[key] = _Hold(fd, exclusive=exclusive)
    try:
        yield True
    finally:
        del _HELD[key]
        os.close(fd)


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
