"""The waveform cache knows a source file by its size, mtime, ctime and inode plus a hash of
its first, middle and last blocks (the whole file when small): a file replaced by other
audio of the same size that keeps its old mtime (``cp -p``, ``rsync -a``, tar,
coarse-mtime file systems) is decoded again."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cl_spoof.data import cache as cache_module
from cl_spoof.data.audio import read_audio
from cl_spoof.data.cache import INT16_SCALE, WaveformCache, source_identity

SR = 16_000
MAX = 12_000


def _clip(path: Path, seed: int, n: int = 10_000) -> np.ndarray:
    wave = (0.2 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    sf.write(path, wave, SR, subtype="PCM_16")
    return np.round(np.clip(read_audio(path), -1, 1) * INT16_SCALE).astype(np.int16)


def _row(cache: WaveformCache, path: Path) -> np.ndarray:
    view, problems = cache.load([str(path)])
    assert not problems
    return np.array(view.data[0, :view.lengths[0]])


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, np.ndarray, Path, np.ndarray]:
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    want_a, want_b = _clip(a, 1), _clip(b, 2)
    assert a.stat().st_size == b.stat().st_size and not np.array_equal(want_a, want_b)
    return a, want_a, b, want_b


def _keep_mtime(path: Path, st: os.stat_result) -> None:
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def test_a_cp_p_replacement_with_the_old_mtime_is_decoded_again(files, tmp_path: Path) -> None:
    a, want_a, b, want_b = files
    cache = WaveformCache(tmp_path / "cache", max_samples=MAX)
    np.testing.assert_array_equal(_row(cache, a), want_a)
    st = a.stat()
    shutil.copy2(b, a)  # what `cp -p b a` does: a's inode rewritten, b's mtime copied
    _keep_mtime(a, st)  # ... and even a's own old mtime
    assert a.stat().st_ino == st.st_ino
    np.testing.assert_array_equal(_row(cache, a), want_b)
    assert cache.decoded == 1


def test_an_rsync_style_replacement_is_decoded_again(files, tmp_path: Path) -> None:
    a, want_a, b, want_b = files
    cache = WaveformCache(tmp_path / "cache", max_samples=MAX)
    np.testing.assert_array_equal(_row(cache, a), want_a)
    st = a.stat()
    tmp = tmp_path / ".a.wav.partial"
    shutil.copyfile(b, tmp)
    _keep_mtime(tmp, st)
    os.replace(tmp, a)  # rsync -a: a new file moved into place with the old mtime
    np.testing.assert_array_equal(_row(cache, a), want_b)


def test_content_alone_tells_a_change_where_times_and_inodes_say_nothing(
        files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system whose metadata says nothing (times and inode numbers reused)."""
    a, want_a, b, want_b = files
    monkeypatch.setattr(cache_module, "_stat_fields", lambda st: (st.st_size, 0, 0, 0))
    cache = WaveformCache(tmp_path / "cache", max_samples=MAX)
    np.testing.assert_array_equal(_row(cache, a), want_a)
    a.write_bytes(b.read_bytes())
    np.testing.assert_array_equal(_row(cache, a), want_b)


def test_an_unchanged_file_is_not_decoded_again(files, tmp_path: Path) -> None:
    a, want_a, *_ = files
    cache = WaveformCache(tmp_path / "cache", max_samples=MAX)
    _row(cache, a)
    np.testing.assert_array_equal(_row(cache, a), want_a)
    assert cache.decoded == 0
    assert source_identity(str(a)) == source_identity(str(a))


def test_identity_of_a_changed_byte_anywhere_in_a_small_file(tmp_path: Path) -> None:
    """A file of up to three blocks is hashed whole: any changed byte changes the identity."""
    path = tmp_path / "x.wav"
    _clip(path, 3, n=4_000)  # 8 kB: hashed whole
    size = path.stat().st_size
    rng = np.random.default_rng(0)
    for at in [0, 44, size // 2, size - 1, *rng.integers(0, size, 20)]:
        raw = bytearray(path.read_bytes())
        before = source_identity(str(path))[-1]
        raw[int(at)] ^= 0x01
        path.write_bytes(bytes(raw))
        assert source_identity(str(path))[-1] != before, at
