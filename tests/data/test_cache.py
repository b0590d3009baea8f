"""The waveform cache under concurrency, damage and a full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cl_spoof.data.audio import read_audio
from cl_spoof.data.cache import INT16_SCALE, WaveformCache
from cl_spoof.errors import FileSystemError
from tests.helpers.paths import ROOT

MAX = 12_000


def _clips(folder: Path, n: int = 6, seconds: float = 0.5, sr: int = 22_050) -> list[str]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"c{i}.wav"
        sf.write(p, (0.2 * rng.standard_normal(int(seconds * sr))).astype(np.float32), sr)
        paths.append(str(p))
    return paths


def _expected(path: str) -> np.ndarray:
    wave = read_audio(path)[:MAX]
    return np.round(np.clip(wave, -1, 1) * INT16_SCALE).astype(np.int16)


def _assert_view_is_right(view, paths: list[str]) -> None:  # noqa: ANN001
    for i, p in enumerate(paths):
        np.testing.assert_array_equal(view.data[i, : view.lengths[i]], _expected(p), err_msg=p)


def _entry(root: Path) -> Path:
    (data,) = root.glob("*.int16.npy")
    return data


CHILD = f"""
import sys, time, json
import numpy as np
from cl_spoof.data.cache import WaveformCache, INT16_SCALE
from cl_spoof.data.audio import read_audio
import os
root, gate, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
open(gate + f".ready{{os.getpid()}}", "w").close()
while not os.path.exists(gate):  # both processes start loading at the same moment
    time.sleep(0.001)
cache = WaveformCache(root, max_samples={MAX}, workers=1)
view, problems = cache.load(paths)
bad = []
for i, p in enumerate(paths):
    want = np.round(np.clip(read_audio(p)[:{MAX}], -1, 1) * INT16_SCALE).astype(np.int16)
    got = np.asarray(view.data[i, : view.lengths[i]])
    if got.shape != want.shape or not np.array_equal(got, want):
        bad.append(i)
print(json.dumps({{"decoded": cache.decoded, "bad": bad, "problems": len(problems)}}))
"""


def test_two_processes_filling_an_empty_cache_both_get_the_right_audio(tmp_path: Path) -> None:
    """Neither process replaces the array the other one is filling."""
    paths = _clips(tmp_path / "audio", n=30, seconds=1.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(cache), str(tmp_path / gate),
                               *paths], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for gate in ("go1", "go2")]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go*.ready*"))) < 2 and time.time() < deadline:
        time.sleep(0.01)
    (tmp_path / "go1").touch()  # the first process starts filling the cache...
    while not (cache.is_dir() and any(cache.iterdir())) and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    (tmp_path / "go2").touch()  # ...and the second one starts while it is at it
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert [r["bad"] for r in results] == [[], []], results
    assert sorted(r["decoded"] for r in results) == [0, len(paths)]  # one filled, one waited


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "zero bytes", "foreign file",
                                    "garbage description"])
def test_a_damaged_cache_is_decoded_again_never_used(tmp_path: Path, damage: str) -> None:
    """Damaged content is never used silently; a truncated or empty file does not fail runs."""
    paths = _clips(tmp_path / "audio")
    root = tmp_path / "cache"
    WaveformCache(root, max_samples=MAX).load(paths)
    data = _entry(root)
    size = data.stat().st_size
    if damage == "random bytes":  # over the samples, header intact
        with open(data, "r+b") as fh:
            fh.seek(size // 2)
            fh.write(np.random.default_rng(0).bytes(4000))
    elif damage == "truncated":
        os.truncate(data, size // 3)
    elif damage == "zero bytes":
        os.truncate(data, 0)
    elif damage == "foreign file":
        data.write_bytes(os.urandom(size))
    else:
        (root / data.name.replace(".int16.npy", ".json")).write_text("{not json")
    cache = WaveformCache(root, max_samples=MAX)
    view, problems = cache.load(paths)
    assert not problems and cache.decoded >= 1
    _assert_view_is_right(view, paths)
    again = WaveformCache(root, max_samples=MAX)
    again.load(paths)
    assert again.decoded == 0 and again.damaged == 0  # repaired for good


def test_a_reader_keeps_its_audio_while_another_process_updates_the_entry(
        tmp_path: Path) -> None:
    """Readers never see a half-written file: an update writes a new file."""
    paths = _clips(tmp_path / "audio")
    root = tmp_path / "cache"
    view, _ = WaveformCache(root, max_samples=MAX).load(paths)
    before = np.array(view.data)
    sf.write(paths[0], np.full(8000, 0.3, dtype=np.float32), 16_000)  # the file changes
    os.utime(paths[0], (time.time() + 5, time.time() + 5))
    view2, _ = WaveformCache(root, max_samples=MAX).load(paths)
    np.testing.assert_array_equal(np.asarray(view.data), before)  # the old view is untouched
    _assert_view_is_right(view2, paths)


def test_a_full_disk_is_a_named_error_and_leaves_no_file(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk gives a named error, neither SIGBUS nor a sparse file left behind."""
    import shutil

    paths = _clips(tmp_path / "audio")
    root = tmp_path / "cache"
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda p: real(p)._replace(free=1000))
    with pytest.raises(FileSystemError,
                       match=r"waveform cache .* needs [0-9.,]+ KiB but only 1,000 bytes are free"):
        WaveformCache(root, max_samples=MAX).load(paths)
    assert not list(root.glob("*.npy*")) and not list(root.glob(".*tmp"))
    monkeypatch.setattr(shutil, "disk_usage", real)

    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(FileSystemError, match=r"No space left on device; free some space"):
        WaveformCache(root, max_samples=MAX).load(paths)
    assert not [p for p in root.iterdir() if "npy" in p.name]


def test_a_file_size_limit_is_a_named_error_not_a_crash(tmp_path: Path) -> None:
    """A real write limit (RLIMIT_FSIZE, like a full disk): a one-line error, no SIGBUS."""
    paths = _clips(tmp_path / "audio")
    script = ("import resource, signal, sys\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))\n"
              "from cl_spoof.data.cache import WaveformCache\n"
              "from cl_spoof.errors import CLSpoofError\n"
              "try:\n"
              f"    WaveformCache(sys.argv[1], max_samples={MAX}).load(sys.argv[2:])\n"
              "except CLSpoofError as exc:\n"
              "    print('ERROR', exc); sys.exit(2)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "cache"), *paths],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "ERROR waveform cache: cannot write" in proc.stdout
    assert not [p for p in (tmp_path / "cache").iterdir() if "npy" in p.name]


def test_a_read_only_cache_folder_is_named(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _clips(tmp_path / "audio")
    real_mkdir = Path.mkdir

    def read_only(self: Path, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        if self == tmp_path / "ro":
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(FileSystemError, match=r"ro: Read-only file system; .*data\.cache_dir"):
        WaveformCache(tmp_path / "ro", max_samples=MAX).load(paths)


def test_a_complete_cache_in_a_read_only_folder_still_serves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _clips(tmp_path / "audio")
    root = tmp_path / "cache"
    WaveformCache(root, max_samples=MAX).load(paths)
    for lock in root.glob("*.lock"):
        lock.unlink()
    real_open = os.open

    def read_only(path, flags, *args):  # noqa: ANN001, ANN002, ANN202
        if str(path).endswith(".lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    view, problems = WaveformCache(root, max_samples=MAX).load(paths)
    assert not problems
    _assert_view_is_right(view, paths)
    with pytest.raises(FileSystemError, match=r"read-only, and 6 clip\(s\) need decoding"):
        WaveformCache(root, max_samples=MAX // 2).load(paths)
