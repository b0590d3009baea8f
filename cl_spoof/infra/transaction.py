"""All-or-nothing changes to a folder with one owner: a failed command leaves it as it
was, and a reader never sees half of a change.

:func:`all_or_nothing` remembers the folder's files when the block starts (hard
links in a hidden undo folder inside it, so nothing is copied; every cl-spoof
write replaces a file by a new one, so a link keeps the old content) and, when the
block raises — an error, Ctrl-C, SIGTERM — removes whatever the block added and puts
the remembered files back. A folder the block created is removed, with the parent
folders it created. :meth:`Transaction.keep` accepts what was written so far (a
run keeps each completed stage for ``--resume``). The change is committed when the
undo folder is moved away.

A process killed in the middle (``kill -9``) leaves its undo folder behind; the
next command on that folder puts the folder back first (:func:`recover`). Putting
back is idempotent: the undo folder is only linked from, never emptied, until
everything is back, so a restore that is itself interrupted is simply done again.
Symbolic links are remembered and put back as links; the walk never follows them.

:class:`OwnedFolder` gives a folder one owner and safe readers:

- the **owner lock** (``.cl-spoof-lock``, :func:`~cl_spoof.infra.files.owner_lock`):
  every command that changes the folder holds it from start to end; a second one is
  refused at once, naming the holder, or waits (``--wait``);
- the **folder lock** (``flock`` on the folder itself): exclusive while an undo
  folder is made, moved away or restored from, and while a stage is recorded;
  shared while a reader reads, so it reads either before or after;
- :meth:`OwnedFolder.reading`: a reader that finds an interrupted change rolls it
  back when nobody owns the folder, else (someone does, or the folder is read-only)
  reads what was committed: the files the undo folder remembers (a :class:`View`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from cl_spoof.errors import FileSystemError
from cl_spoof.infra.files import folder_lock, holds_lock, owner_lock, try_owner_lock
from cl_spoof.infra.signals import critical
from cl_spoof.infra.testhook import pause_point

#: Names of cl-spoof's own bookkeeping in a folder: never part of a change.
HIDDEN_PREFIX = ".cl-spoof-"
UNDO_PREFIX = ".cl-spoof-undo-"
DONE_PREFIX = ".cl-spoof-done-"
RESTORING_PREFIX = ".cl-spoof-restoring-"
LOCK_FILE = ".cl-spoof-lock"
MANIFEST = "manifest.json"

Guard = Callable[[], AbstractContextManager[Any]]


def _unguarded() -> AbstractContextManager[Any]:
    return contextlib.nullcontext()


class Transaction:
    """The handle :func:`all_or_nothing` yields."""

    def __init__(self, folder: Path, undo: Path | None, guard: Guard = _unguarded) -> None:
        self.folder = folder
        self.undo = undo
        self.kept = False
        self._guard = guard

    def keep(self) -> None:
        """Keep what the block wrote so far, whatever happens next."""
        if not self.kept:
            self.kept = True
            with self._guard():
                _discard(self.undo)
            self.undo = None


def is_hidden(name: str) -> bool:
    """Whether ``name`` is cl-spoof's own bookkeeping (undo folders, the lock file)."""
    return name.startswith(HIDDEN_PREFIX)


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths of the folders and files under ``folder``; bookkeeping skipped,
    symbolic links (to folders too) listed as files and never followed."""
    dirs: list[str] = []
    files: list[str] = []
    for root, subdirs, names in os.walk(folder):
        rel = Path(root).relative_to(folder)
        links = [d for d in subdirs if os.path.islink(os.path.join(root, d))]
        subdirs[:] = [d for d in subdirs if not is_hidden(d) and d not in links]
        dirs.extend(str(rel / d) for d in subdirs)
        files.extend(str(rel / n) for n in [*names, *links] if not is_hidden(n))
    return sorted(dirs), sorted(files)


def _link(src: Path, dst: Path) -> None:
    """A hard link ``dst`` to ``src`` itself (a symbolic link stays one); a copy where the
    file system has no hard links."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _snapshot(folder: Path) -> Path | None:
    """Link every file of ``folder`` into a new undo folder; None for an empty folder."""
    dirs, files = _walk(folder)
    if not dirs and not files:
        return None
    undo = folder / f"{UNDO_PREFIX}{os.getpid()}"
    if undo.exists():
        shutil.rmtree(undo)
    for rel in files:
        target = undo / "files" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        _link(folder / rel, target)
    tmp = undo / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"dirs": dirs, "files": files}))
    os.replace(tmp, undo / MANIFEST)  # the undo folder is usable only once this exists
    return undo


def _discard(undo: Path | None) -> None:
    if undo is None or not undo.exists():
        return
    done = undo.with_name(DONE_PREFIX + undo.name[len(UNDO_PREFIX):])
    with critical():
        os.replace(undo, done)  # the commit: never restored from once renamed
    shutil.rmtree(done, ignore_errors=True)


def _manifest(undo: Path) -> tuple[list[str], list[str]]:
    manifest = json.loads((undo / MANIFEST).read_text())
    return list(manifest["dirs"]), list(manifest["files"])


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _same_entry(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are hard links of one file (links not followed)."""
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _restore(folder: Path, undo: Path | None) -> None:
    """Put ``folder`` back as the undo folder remembers it (empty when there is none).

    Idempotent: every step can be cut short (``kill -9``) and the whole restore done
    again; the undo folder is linked from, not emptied, and goes only at the end.
    """
    keep_dirs: list[str] = []
    keep_files: list[str] = []
    if undo is not None and (undo / MANIFEST).is_file():
        keep_dirs, keep_files = _manifest(undo)
    with critical():
        kept_dirs, kept_files = set(keep_dirs), set(keep_files)
        dirs, files = _walk(folder)
        for rel in files:
            if rel not in kept_files:
                _remove(folder / rel)
        for rel in sorted(dirs, key=lambda d: d.count(os.sep), reverse=True):
            if rel not in kept_dirs:
                _remove(folder / rel)
        for rel in keep_dirs:
            target = folder / rel
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
        paused = False
        for rel in keep_files:
            src, dst = undo / "files" / rel, folder / rel  # type: ignore[operator]
            if not os.path.lexists(src):
                if os.path.lexists(dst):  # an older cl-spoof moved it back already
                    continue
                raise FileSystemError(f"{folder}: cannot put back {rel}: the hidden undo "
                                      f"folder {undo} lacks it")
            if _same_entry(src, dst):
                continue  # put back already (a rename onto its own hard link does nothing)
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            tmp = dst.with_name(RESTORING_PREFIX + dst.name)
            _remove(tmp)
            _link(src, tmp)
            os.replace(tmp, dst)
            if not paused:  # one file put back, the others not yet
                paused = True
                pause_point("restoring")
        if undo is not None:
            _discard(undo)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pending(folder: str | Path) -> Path | None:
    """The undo folder of a change not committed yet (one in progress or interrupted),
    if any."""
    folder = Path(folder)
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    for entry in entries:
        if entry.name.startswith(UNDO_PREFIX) and (entry / MANIFEST).is_file():
            return entry
    return None


def recover(folder: str | Path, owned: bool = False) -> bool:
    """Put ``folder`` back where a killed command left an undo folder; True if it did.

    ``owned``: the caller holds the folder's owner lock, so every undo folder is an
    interrupted change (else one of a live process is left alone).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    recovered = False
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(DONE_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(UNDO_PREFIX):
            pid = entry.name[len(UNDO_PREFIX):]
            if not owned and pid.isdigit() and _alive(int(pid)):
                continue
            if (entry / MANIFEST).is_file():
                _restore(folder, entry)
                recovered = True
            else:  # killed while remembering: nothing had been changed yet
                shutil.rmtree(entry, ignore_errors=True)
    return recovered


@contextlib.contextmanager
def all_or_nothing(folder: str | Path, keep_if: Callable[[], bool] | None = None,
                   lock: Guard | None = None, guard: Guard = _unguarded
                   ) -> Iterator[Transaction]:
    """Run the block; if it raises, put ``folder`` back as it was (see the module docstring).

    ``keep_if`` is asked on failure: when it returns True what was written is kept.
    ``lock``: the folder's owner lock, taken (once the folder exists) before anything is
    read, and held to the end. ``guard``: the lock held while the undo folder is made,
    moved away or restored from (readers wait for it).
    """
    folder = Path(folder)
    created: list[Path] = []  # folders that do not exist yet, outermost first
    probe = folder.absolute()
    while not probe.exists():
        created.insert(0, probe)
        probe = probe.parent
    with contextlib.ExitStack() as stack:
        if lock is not None:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                stack.enter_context(lock())
            except BaseException:
                _remove_created(created)
                raise
        with guard():
            if lock is None:  # else the owner put back what a killed command left
                recover(folder)
            undo = _snapshot(folder) if folder.is_dir() else None
        tx = Transaction(folder, undo, guard)
        try:
            yield tx
        except BaseException:
            with guard():
                if tx.kept or (keep_if is not None and keep_if()):
                    _discard(tx.undo)
                elif created:
                    with critical():
                        shutil.rmtree(created[-1], ignore_errors=True)
                        _remove_created(created[:-1])
                elif folder.is_dir():
                    _restore(folder, tx.undo)
            raise
        else:
            with guard():
                _discard(tx.undo)


def _remove_created(created: list[Path]) -> None:
    """Remove the folders in ``created`` that are empty, innermost first (another process
    may be using one)."""
    for path in reversed(created):
        with contextlib.suppress(OSError):
            path.rmdir()


class View:
    """The committed files of a folder whose change is not committed: what its undo
    folder remembers (a file the change added does not exist here)."""

    def __init__(self, undo: Path) -> None:
        self.root = undo / "files"


class OwnedFolder:
    """A folder with one owner at a time and readers that see only committed changes
    (see the module docstring); ``what`` names it in messages."""

    def __init__(self, path: str | Path, what: str | Path | None = None) -> None:
        self.path = Path(path)
        self.what = what if what is not None else self.path

    @property
    def lock_file(self) -> Path:
        """``.cl-spoof-lock``: the owner lock (its holder's command, pid and start time)."""
        return self.path / LOCK_FILE

    def owned(self) -> bool:
        """Whether this process owns the folder now."""
        return holds_lock(self.lock_file)

    @contextlib.contextmanager
    def owning(self, command: str, wait: bool = False, create: bool = False
               ) -> Iterator[None]:
        """Own the folder for ``command`` (refused at once naming the holder, or waiting
        with ``wait``), after putting back a change an interrupted command left;
        ``create``: the command makes the folder (again, if it went while it waited)."""
        first = not self.owned()  # taken again inside: its own change is under way
        with owner_lock(self.lock_file, command, wait, self.what, create):
            if first:
                with self.writing():
                    recover(self.path, owned=True)
            yield

    def writing(self) -> AbstractContextManager[bool]:
        """The folder lock, exclusive: readers wait until the block ends."""
        return folder_lock(self.path, exclusive=True)

    def change(self, command: str, wait: bool = False,
               keep_if: Callable[[], bool] | None = None) -> AbstractContextManager[Transaction]:
        """:func:`all_or_nothing` over the folder, owned by ``command`` throughout."""
        return all_or_nothing(self.path, keep_if,
                              lock=lambda: self.owning(command, wait, create=True),
                              guard=self.writing)

    @contextlib.contextmanager
    def reading(self, command: str) -> Iterator[View | None]:
        """Read the committed state: yields None (read the folder) or a :class:`View`
        (read what the undo folder remembers). An interrupted change is rolled back first
        when nobody owns the folder and it can be written (``command`` then holds the
        owner lock for that moment)."""
        if self.owned():
            yield None  # the owner's own reads: its changes are committed or rolled back
            return
        if pending(self.path) is not None:
            with contextlib.suppress(OSError), try_owner_lock(self.lock_file, command) as got:
                if got:
                    with self.writing():
                        recover(self.path, owned=True)
        with folder_lock(self.path, exclusive=False):
            undo = pending(self.path)
            yield View(undo) if undo is not None else None
