"""A folder with one owner: all-or-nothing changes, an idempotent rollback, readers that
see only what was committed, and the owner lock (tested over many generated cases)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cl_spoof.infra import transaction
from cl_spoof.infra.files import FolderInUseError, owner_lock
from cl_spoof.infra.transaction import OwnedFolder, _snapshot, all_or_nothing, recover

ROOT = Path(__file__).resolve().parents[2]


def tree(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (cl-spoof's own bookkeeping aside): folders, links (and
    where they point) and files (a digest of their content); links are not followed."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in [*dirs, *files]:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if any(part.startswith(".cl-spoof-") for part in Path(rel).parts):
                continue
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return out


def random_folder(folder: Path, rng: random.Random, outside: Path) -> None:
    """A folder of a few files and subfolders, sometimes with links (to a file, to a
    folder outside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(rng.randint(1, 6)):
        sub = folder / rng.choice(["", "a", "a/b", "c"])
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i}").write_text(f"old {i} {rng.random()}")
    if rng.random() < 0.4:
        (folder / "to_outside").symlink_to(outside, target_is_directory=True)
    if rng.random() < 0.3:
        (folder / "link_to_file").symlink_to("a" if (folder / "a").is_file() else "c")


def random_change(folder: Path, rng: random.Random) -> None:
    """What a command does to a folder: new files, replaced files (cl-spoof always replaces,
    never edits), removed files and links, new folders, a link replaced by a folder."""
    for _ in range(rng.randint(1, 8)):
        entries = [p for p in folder.rglob("*") if not any(
            part.startswith(".cl-spoof-") for part in p.relative_to(folder).parts)
            and not any(q.is_symlink() for q in [p, *p.parents] if folder in q.parents)]
        files = [p for p in entries if p.is_file()]
        op = rng.choice(["new", "replace", "delete", "mkdir", "unlink_link"])
        if op == "new" or not files:
            target = folder / rng.choice(["", "a", "n/m", "c"]) / f"y{rng.randint(0, 9)}"
            if target.parent.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_dir():
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_text(f"new {rng.random()}")
                os.replace(tmp, target)
        elif op == "replace":
            victim = rng.choice(files)
            tmp = victim.with_name(victim.name + ".tmp")
            tmp.write_text(f"changed {rng.random()}")
            os.replace(tmp, victim)
        elif op == "delete":
            rng.choice(files).unlink()
        elif op == "mkdir":
            (folder / "e" / "f").mkdir(parents=True, exist_ok=True)
        else:
            link = folder / "to_outside"
            if link.is_symlink():
                link.unlink()
                link.mkdir()
                (link / "inside_now").write_text("x")


class Killed(BaseException):
    """A process killed here (``kill -9``): nothing after it runs."""


class DyingOs:
    """``os`` for the transaction module, killed at its ``budget``-th file operation."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.calls = 0

    def __getattr__(self, name: str):  # noqa: ANN204
        real = getattr(os, name)
        if name not in ("replace", "link", "unlink", "rmdir", "rename"):
            return real

        def dying(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            self.calls += 1
            if self.calls > self.budget:
                raise Killed
            return real(*args, **kwargs)

        return dying


def interrupted_change(folder: Path, rng: random.Random) -> Path:
    """Change ``folder`` as a command does and leave it as a killed command would: the
    undo folder (of a process that no longer exists) and the half-made change."""
    undo = _snapshot(folder)
    assert undo is not None
    dead = undo.with_name(".cl-spoof-undo-999999999")
    undo.rename(dead)
    random_change(folder, rng)
    return dead


# ------------------------------------------------------------------ the rollback


def test_a_rollback_cut_short_anywhere_is_finished_by_the_next_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill the rollback after each of its file operations in turn: the next command
    puts the folder back exactly, every time (the undo folder is only read from)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs").write_text("not ours")
    cases = cut = 0
    for trial in range(25):
        for budget in range(200):
            folder = tmp_path / f"f{trial}_{budget}"
            random_folder(folder, random.Random(trial), outside)
            before = tree(folder)
            interrupted_change(folder, random.Random(1000 + trial))
            monkeypatch.setattr(transaction, "os", DyingOs(budget))
            try:
                recover(folder)
                finished = True
            except Killed:
                finished = False
            monkeypatch.setattr(transaction, "os", os)
            cases += 1
            if not finished:
                cut += 1
                recover(folder)  # the next command
                recover(folder)  # and another: nothing left to do
            assert tree(folder) == before, (trial, budget)
            assert not [p for p in folder.iterdir() if p.name.startswith(".cl-spoof-")]
            assert tree(outside) == {"theirs": hashlib.sha1(b"not ours").hexdigest()}
            if finished:
                break
    assert cut > 100 and cases > cut


def test_links_are_remembered_as_links_and_never_followed(tmp_path: Path) -> None:
    """A change that writes through, replaces or removes a symbolic link inside the folder
    is rolled back to the link; what lies behind it is never removed or changed by the
    rollback."""
    rng = random.Random(12)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs").write_text("not ours")
    for trial in range(40):
        folder = tmp_path / f"f{trial}"
        random_folder(folder, rng, outside)
        (folder / "report").symlink_to(outside, target_is_directory=True)
        before = tree(folder)
        with pytest.raises(RuntimeError), all_or_nothing(folder):
            random_change(folder, rng)
            if rng.random() < 0.5:
                (folder / "report").unlink()
                (folder / "report").mkdir()
                (folder / "report" / "new.html").write_text("x")
            raise RuntimeError("fail")
        assert tree(folder) == before, trial
        assert sorted(p.name for p in outside.iterdir()) == ["theirs"]


# ------------------------------------------------------------------ readers


def _committed_reads(folder: Path, before: dict[str, str]) -> dict[str, str]:
    """What a reader sees of every file and link of ``before`` and of the folder now, read
    inside :meth:`OwnedFolder.reading`."""
    seen = {}
    with OwnedFolder(folder).reading("test") as view:
        root = view.root if view is not None else folder
        for rel in set(before) | set(tree(folder)):
            path = root / rel
            if path.is_symlink():
                seen[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                seen[rel] = hashlib.sha1(path.read_bytes()).hexdigest()
    return seen


HOLDER = """
import sys, time
from cl_spoof.infra.files import owner_lock
with owner_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def hold(lock_file: Path, command: str = "add-attack", seconds: float = 120
         ) -> subprocess.Popen:
    """Another process owning the folder of ``lock_file`` (until killed or ``seconds``)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock_file), command,
                             str(seconds)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_readers_see_only_committed_changes(tmp_path: Path) -> None:
    """After an interrupted change a reader sees exactly the folder as it was before the
    change: it rolls the change back when nobody owns the folder, and reads what the undo
    folder remembers while someone does (the change is left for its owner)."""
    rng = random.Random(13)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "theirs").write_text("not ours")
    for trial in range(30):
        folder = tmp_path / f"f{trial}"
        random_folder(folder, random.Random(trial), outside)
        before = tree(folder)
        interrupted_change(folder, rng)
        owned = trial % 2 == 1
        holder = hold(OwnedFolder(folder).lock_file) if owned else None
        try:
            changed = tree(folder)
            assert changed != before or trial  # the change is there to be hidden
            seen = _committed_reads(folder, before)
            assert seen == {k: v for k, v in before.items() if v != "dir"}, trial
            if owned:  # left for the owner: the reader changed nothing
                assert tree(folder) == changed
            else:  # rolled back by the reader
                assert tree(folder) == before
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()


# ------------------------------------------------------------------ the owner lock


COMMANDS = ["run", "run --resume", "add-attack", "report", "compare", "compare --resume"]


def test_a_second_owner_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """Whoever holds a folder, any other command is refused at once with one line naming
    the holder (command, pid, start time); the same process may take it again."""
    lock = tmp_path / ".cl-spoof-lock"
    for holder_command in COMMANDS:
        proc = hold(lock, holder_command)
        try:
            for command in COMMANDS:
                started = time.monotonic()
                with pytest.raises(FolderInUseError) as info, owner_lock(lock, command,
                                                                          what=tmp_path):
                    pass
                assert time.monotonic() - started < 2  # at once, not after a wait
                message = str(info.value)
                assert "\n" not in message and message.startswith(f"{tmp_path}: in use by")
                assert f"`cl-spoof {holder_command}`, pid {proc.pid} on " in message
                assert "started 20" in message and "--wait" in message
        finally:
            proc.kill()
            proc.wait()
        with owner_lock(lock, "run"), owner_lock(lock, "report"):  # free, and re-entrant
            assert "run" in lock.read_text()
        assert lock.read_text() == ""  # released: nobody named


def test_wait_waits_for_the_holder_and_a_killed_holder_frees_the_folder(
        tmp_path: Path) -> None:
    lock = tmp_path / ".cl-spoof-lock"
    proc = hold(lock, "add-attack", seconds=1.5)
    started = time.monotonic()
    with owner_lock(lock, "add-attack", wait=True):
        assert time.monotonic() - started > 0.5
        assert '"add-attack"' in lock.read_text() and str(os.getpid()) in lock.read_text()
    proc.wait()
    proc = hold(lock, "run")
    proc.kill()  # kill -9: the kernel releases its lock
    proc.wait()
    with owner_lock(lock, "run"):
        pass


def test_a_waiting_owner_follows_a_folder_that_was_rolled_back(tmp_path: Path) -> None:
    """A command waiting for a new folder whose creator failed (and removed the folder
    with its lock file) gets the lock of the folder it then makes, never the removed
    one's: two commands never own one folder."""
    folder = tmp_path / "new"
    got: list[str] = []

    def creator() -> None:
        with pytest.raises(RuntimeError), OwnedFolder(folder).change("run"):
            time.sleep(0.5)
            raise RuntimeError("fail")

    thread = threading.Thread(target=creator)
    thread.start()
    time.sleep(0.2)
    proc = subprocess.Popen([sys.executable, "-c", (
        "import sys\nfrom pathlib import Path\n"
        "from cl_spoof.infra.transaction import OwnedFolder\n"
        "with OwnedFolder(sys.argv[1]).change('run', wait=True):\n"
        "    Path(sys.argv[1], 'mine').write_text('x')\n    print('ok')\n"), str(folder)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    thread.join()
    out, _ = proc.communicate(timeout=60)
    got.append(out.strip())
    assert got == ["ok"] and (folder / "mine").is_file()
