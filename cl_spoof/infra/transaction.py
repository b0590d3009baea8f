"""All-or-nothing changes to a folder: a failed command leaves it as it was.

:func:`all_or_nothing` remembers the folder's files when the block starts (hard
links in a hidden undo folder inside it, so nothing is copied; every cl-spoof
write replaces a file by a new one, so a link keeps the old content) and, when the
block raises — an error, Ctrl-C — removes whatever the block added and puts the
remembered files back. A folder the block created is removed, with the parent
folders it created. :meth:`Transaction.keep` accepts what was written so far (a
run keeps each completed stage for ``--resume``).

A process killed in the middle (``kill -9``) leaves its undo folder behind; the
next :func:`all_or_nothing` on that folder puts the folder back first
(:func:`recover`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

UNDO_PREFIX = ".cl-spoof-undo-"
DONE_PREFIX = ".cl-spoof-done-"
MANIFEST = "manifest.json"


class Transaction:
    """The handle :func:`all_or_nothing` yields."""

    def __init__(self, folder: Path, undo: Path | None) -> None:
        self.folder = folder
        self.undo = undo
        self.kept = False

    def keep(self) -> None:
        """Keep what the block wrote so far, whatever happens next."""
        if not self.kept:
            self.kept = True
            _discard(self.undo)
            self.undo = None


def _is_undo(name: str) -> bool:
    return name.startswith((UNDO_PREFIX, DONE_PREFIX))


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """Relative paths of the folders and files under ``folder`` (undo folders skipped)."""
    dirs: list[str] = []
    files: list[str] = []
    for root, subdirs, names in os.walk(folder):
        if Path(root) == folder:
            subdirs[:] = [d for d in subdirs if not _is_undo(d)]
        rel = Path(root).relative_to(folder)
        dirs.extend(str(rel / d) for d in subdirs)
        files.extend(str(rel / n) for n in names)
    return sorted(dirs), sorted(files)


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
        try:
            os.link(folder / rel, target)
        except OSError:  # a file system without hard links
            shutil.copy2(folder / rel, target)
    tmp = undo / f"{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"dirs": dirs, "files": files}))
    os.replace(tmp, undo / MANIFEST)  # the undo folder is usable only once this exists
    return undo


def _discard(undo: Path | None) -> None:
    if undo is None or not undo.exists():
        return
    done = undo.with_name(DONE_PREFIX + undo.name[len(UNDO_PREFIX):])
    os.replace(undo, done)  # never restored from once renamed, even if removal is cut short
    shutil.rmtree(done, ignore_errors=True)


def _restore(folder: Path, undo: Path | None) -> None:
    """Put ``folder`` back as the undo folder remembers it (empty when there is none)."""
    keep_dirs: set[str] = set()
    keep_files: list[str] = []
    if undo is not None and (undo / MANIFEST).is_file():
        manifest = json.loads((undo / MANIFEST).read_text())
        keep_dirs, keep_files = set(manifest["dirs"]), list(manifest["files"])
    dirs, files = _walk(folder)
    for rel in files:
        if rel not in keep_files:
            (folder / rel).unlink()
    for rel in sorted(dirs, key=lambda d: d.count(os.sep), reverse=True):
        if rel not in keep_dirs:
            shutil.rmtree(folder / rel, ignore_errors=True)
    for rel in keep_dirs:
        (folder / rel).mkdir(parents=True, exist_ok=True)
    for rel in keep_files:
        os.replace(undo / "files" / rel, folder / rel)  # type: ignore[operator]
    if undo is not None:
        shutil.rmtree(undo, ignore_errors=True)


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


def recover(folder: str | Path) -> bool:
    """Put ``folder`` back where a killed command left an undo folder; True if it did."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    recovered = False
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(DONE_PREFIX):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.startswith(UNDO_PREFIX):
            pid = entry.name[len(UNDO_PREFIX):]
            if pid.isdigit() and _alive(int(pid)):
                continue
            if (entry / MANIFEST).is_file():
                _restore(folder, entry)
                recovered = True
            else:  # killed while remembering: nothing had been changed yet
                shutil.rmtree(entry, ignore_errors=True)
    return recovered


@contextlib.contextmanager
def all_or_nothing(folder: str | Path,
                   keep_if: Callable[[], bool] | None = None) -> Iterator[Transaction]:
    """Run the block; if it raises, put ``folder`` back as it was (see the module docstring).

    ``keep_if`` is asked on failure: when it returns True what was written is kept.
    """
    folder = Path(folder)
    recover(folder)
    created: list[Path] = []  # folders that do not exist yet, outermost first
    probe = folder.absolute()
    while not probe.exists():
        created.insert(0, probe)
        probe = probe.parent
    undo = _snapshot(folder) if folder.is_dir() else None
    tx = Transaction(folder, undo)
    try:
        yield tx
    except BaseException:
        if tx.kept or (keep_if is not None and keep_if()):
            _discard(tx.undo)
        elif created:
            shutil.rmtree(created[-1], ignore_errors=True)
            for path in reversed(created[:-1]):
                with contextlib.suppress(OSError):
                    path.rmdir()  # only when empty: another process may be using it
        elif folder.is_dir():
            _restore(folder, tx.undo)
        raise
    else:
        _discard(tx.undo)
