"""Scoring audio with a trained checkpoint: formats, windows, inputs, failures, thresholds."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from cl_spoof.config import load_config
from cl_spoof.data.audio import fix_length, read_audio
from cl_spoof.data.inputs import collect_inputs
from cl_spoof.data.windows import window_starts
from cl_spoof.errors import CLSpoofError, ConfigError, DataError
from cl_spoof.infra.checkpoints import CHECKPOINT_FORMAT, CheckpointError, save_checkpoint
from cl_spoof.metrics.plugin import logits_to_scores
from cl_spoof.models.loading import load_checkpoint
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.score import (
    FileScore,
    ScoreResult,
    score_paths,
    write_score_file,
)
from tests.helpers.configs import tiny_config

torch.set_num_threads(1)

WINDOW = 4000  # tiny_config's data.num_samples


def _tone(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Low-amplitude tone plus noise, ``(n,)`` or ``(n, channels)``."""
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sr)))
    t = np.arange(n) / sr
    wave = 0.1 * np.sin(2 * np.pi * rng.uniform(150, 400) * t) + 0.01 * rng.standard_normal(n)
    if channels > 1:
        wave = np.stack([wave * (1 - 0.3 * c) for c in range(channels)], axis=1)
    return wave.astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of a one-stage tiny run."""
    tmp = tmp_path_factory.mktemp("score_run")
    cfg = load_config(tiny_config(tiny_corpus, tmp, strategy={"name": "joint"}))
    run_experiment(cfg, tmp / "run")
    path = tmp / "run" / "checkpoints" / "stage_1.pt"
    assert path.is_file()
    return path


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files in several formats, rates, channel counts and lengths."""
    root = tmp_path_factory.mktemp("score_audio")
    specs = {
        "wav8k": ("a.wav", 1.0, 8000, 1),
        "flac22k_stereo": ("b.flac", 0.7, 22050, 2),
        "ogg48k": ("c.ogg", 0.5, 48000, 1),
        "short": ("d.wav", 0.05, 16000, 1),  # 800 samples, shorter than one window
        "long": ("sub/e.wav", 60.0, 16000, 1),
    }
    out = {}
    for i, (key, (name, secs, sr, ch)) in enumerate(specs.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, _tone(secs, sr, ch, seed=i), sr)
        out[key] = path
    return out


def _by_name(result: ScoreResult) -> dict[str, FileScore]:
    return {f.path.name: f for f in result.files}


def test_scores_every_format_rate_channel_count_and_length(checkpoint: Path,
                                                           audio: dict[str, Path]) -> None:
    res = score_paths(checkpoint, list(audio.values()))
    assert res.failed == []
    assert [f.path for f in res.files] == list(audio.values())  # input order kept
    got = _by_name(res)
    assert got["a.wav"].num_windows == 7  # 16,000 samples: starts 0..12,000 every 2,000
    assert got["a.wav"].seconds == pytest.approx(1.0)
    assert got["d.wav"].num_windows == 1
    assert got["e.wav"].num_windows == (960_000 - WINDOW) // (WINDOW // 2) + 1
    assert res.window == WINDOW and res.hop == WINDOW // 2
    for f in res.files:
        assert np.isfinite(f.score)
        assert f.decision == ("bonafide" if f.score >= res.threshold else "spoof")


def test_file_score_is_mean_of_its_window_scores(checkpoint: Path,
                                                 audio: dict[str, Path]) -> None:
    hop = 3000  # (960,000 - 4,000) is no multiple of 3,000: a tail window is added
    res = score_paths(checkpoint, [audio["long"], audio["short"]], hop=hop, batch_size=7)
    ckpt = load_checkpoint(checkpoint)
    assert ckpt.level == "rms" and ckpt.level_db is None  # the default: -26 dBFS RMS
    model = ckpt.model

    def leveled(wave: np.ndarray) -> np.ndarray:
        """The run's level rule: the gain to -26 dBFS RMS measured on the first
        1.5 input lengths (what a run caches of each utterance), applied to all."""
        start = wave[: int(1.5 * WINDOW)].astype(np.float64)
        return (wave * np.float32(10 ** (-26 / 20) / np.sqrt(np.mean(start**2)))).astype(
            np.float32)

    wave = leveled(read_audio(audio["long"]))
    starts = list(range(0, len(wave) - WINDOW + 1, hop)) + [len(wave) - WINDOW]
    assert starts[-1] - starts[-2] < hop
    assert window_starts(len(wave), WINDOW, hop).tolist() == starts
    windows = torch.from_numpy(np.stack([wave[s:s + WINDOW] for s in starts]))
    with torch.inference_mode():
        expected = logits_to_scores(model(windows)).double().mean().item()
        short = leveled(read_audio(audio["short"]))
        expected_short = logits_to_scores(
            model(torch.from_numpy(fix_length(short, WINDOW))[None])).item()
    long_score, short_score = res.files
    assert long_score.num_windows == len(starts)
    assert long_score.score == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert short_score.score == pytest.approx(expected_short, rel=1e-5, abs=1e-6)


def test_scores_do_not_depend_on_the_file_level(checkpoint: Path, audio: dict[str, Path],
                                                tmp_path: Path) -> None:
    """data.level rms: a file 12 dB quieter (and one louder, in float) scores the same."""
    wave, sr = sf.read(audio["long"], dtype="float32")
    quiet, loud = tmp_path / "quiet.wav", tmp_path / "loud.flac"
    sf.write(quiet, wave * 0.25, sr, subtype="FLOAT")
    sf.write(loud, np.clip(wave * 4.0, -1, 1), sr)
    res = score_paths(checkpoint, [audio["long"], quiet, loud])
    same, quieter, louder = (f.score for f in res.files)
    assert quieter == pytest.approx(same, abs=1e-4)
    assert louder == pytest.approx(same, abs=2e-2)  # 16-bit FLAC: rounding only


def test_window_starts() -> None:
    assert window_starts(10, 10, 5).tolist() == [0]
    assert window_starts(3, 10, 5).tolist() == [0]
    assert window_starts(20, 10, 5).tolist() == [0, 5, 10]
    assert window_starts(22, 10, 5).tolist() == [0, 5, 10, 12]


def test_folder_and_manifest_inputs(checkpoint: Path, audio: dict[str, Path],
                                    tmp_path: Path) -> None:
    root = audio["wav8k"].parent
    folder = collect_inputs([root])
    assert folder == sorted(folder) and len(folder) == len(audio)  # recursive, sorted
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,attack,speaker,split\n"
                        f"{audio['ogg48k']},bonafide,-,,eval\n"
                        f"{audio['short']},spoof,X,,eval\n")
    mixed = collect_inputs([manifest, audio["wav8k"], root])
    assert mixed[:3] == [audio["ogg48k"], audio["short"], audio["wav8k"]]
    assert len(mixed) == len(audio)  # duplicates dropped, first occurrence kept
    res = score_paths(checkpoint, [manifest])
    assert [f.path for f in res.files] == [audio["ogg48k"], audio["short"]]

    empty = tmp_path / "empty"
    (empty / "nested").mkdir(parents=True)
    (empty / "notes.txt").write_text("no audio here")
    with pytest.raises(DataError, match="no audio files"):
        score_paths(checkpoint, [empty])
    with pytest.raises(DataError, match="no such file"):
        collect_inputs([tmp_path / "missing.wav"])
    with pytest.raises(DataError, match="no input"):
        collect_inputs([])


def test_corrupt_file_is_reported_and_others_scored(checkpoint: Path, audio: dict[str, Path],
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    seen: list[tuple[int, int]] = []
    res = score_paths(checkpoint, [audio["wav8k"], bad, audio["short"], empty],
                      progress=lambda i, n: seen.append((i, n)))
    assert [f.path for f in res.files] == [audio["wav8k"], audio["short"]]
    assert [p for p, _ in res.failed] == [bad, empty]
    assert "unreadable" in res.failed[0][1] and "zero-length" in res.failed[1][1]
    assert res.summary.failed == 2
    assert seen[-1] == (4, 4) and [i for i, _ in seen] == sorted(i for i, _ in seen)
    with pytest.raises(DataError, match="none of the 2 input file"):
        score_paths(checkpoint, [bad, empty])


def test_threshold_eer_and_float(checkpoint: Path, audio: dict[str, Path]) -> None:
    inputs = list(audio.values())
    eer = score_paths(checkpoint, inputs)
    ckpt = torch.load(checkpoint, weights_only=True)
    assert eer.threshold == pytest.approx(ckpt["eer_threshold"])
    assert eer.threshold_source == "eer" and "stage 1" in eer.summary.threshold_origin
    scores = np.array([f.score for f in eer.files])
    mid = float(np.median(scores))
    user = score_paths(checkpoint, inputs, threshold=mid)
    assert user.threshold_source == "user" and user.threshold == mid
    assert [f.score for f in user.files] == [f.score for f in eer.files]
    for res in (eer, user):
        expected = ["bonafide" if s >= res.threshold else "spoof" for s in scores]
        assert [f.decision for f in res.files] == expected
        assert res.summary.bonafide == expected.count("bonafide")
        assert res.summary.spoof == expected.count("spoof")
    assert user.summary.bonafide == int((scores >= mid).sum()) >= 1
    low = score_paths(checkpoint, inputs, threshold=str(scores.min() - 1))
    assert low.summary.bonafide == len(inputs) and low.summary.spoof == 0
    high = score_paths(checkpoint, inputs, threshold=scores.max() + 1)
    assert high.summary.spoof == len(inputs)
    with pytest.raises(ConfigError, match="threshold"):
        score_paths(checkpoint, inputs, threshold="median")


def test_bad_settings(checkpoint: Path, audio: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="hop"):
        score_paths(checkpoint, [audio["short"]], hop=WINDOW + 1)
    with pytest.raises(ConfigError, match="window"):
        score_paths(checkpoint, [audio["short"]], window=10)
    with pytest.raises(ConfigError, match="batch"):
        score_paths(checkpoint, [audio["short"]], batch_size=0)
    with pytest.raises(ConfigError, match="device"):
        score_paths(checkpoint, [audio["short"]], device="nonsense")


def test_not_a_checkpoint_gives_clear_errors(checkpoint: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    other_format = tmp_path / "other.pt"
    torch.save({"format": "something/2"}, other_format)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "when": datetime.now()}, pickled)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:2000])
    cases = [(text, "not a PyTorch file"), (foreign, "not a cl-spoof checkpoint"),
             (other_format, "unsupported checkpoint format"), (truncated, "truncated or corrupt"),
             (pickled, "Python objects"),
             (tmp_path / "absent.pt", "not found")]
    for path, words in cases:
        with pytest.raises(CheckpointError, match=words) as info:
            load_checkpoint(path)
        assert str(path) in str(info.value)
        assert len(str(info.value)) < 400


def test_state_dict_that_does_not_fit_its_config(checkpoint: Path, audio: dict[str, Path],
                                                 tmp_path: Path) -> None:
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["config"]["model"]["preset"] = "small"
    tampered = tmp_path / "tampered.pt"
    save_checkpoint(tampered, ckpt)  # written as cl-spoof writes it: its digest is right
    with pytest.raises(CLSpoofError, match="does not fit the 'small' model") as info:
        score_paths(tampered, [audio["short"]])
    assert str(tampered) in str(info.value)
    assert "Error(s) in loading state_dict" not in str(info.value)


def test_write_score_file(checkpoint: Path, audio: dict[str, Path], tmp_path: Path) -> None:
    res = score_paths(checkpoint, [audio["wav8k"], audio["ogg48k"]], threshold=0.0)
    out = tmp_path / "out" / "scores.txt"
    write_score_file(out, res)
    lines = out.read_text().splitlines()
    assert len(lines) == 2
    for line, f in zip(lines, res.files, strict=True):
        path, score, decision = line.rsplit(maxsplit=2)
        assert path == str(f.path) and decision == f.decision
        assert score == f"{f.score:.6f}"
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind


def test_eer_threshold_missing_needs_a_number(checkpoint: Path, audio: dict[str, Path],
                                              tmp_path: Path) -> None:
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["eer_threshold"] = float("nan")
    path = tmp_path / "nan.pt"
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="no finite EER threshold"):
        score_paths(path, [audio["short"]])
    assert score_paths(path, [audio["short"]], threshold=0.0).threshold == 0.0


def test_data_settings_are_read_as_a_config_reads_them(checkpoint: Path,
                                                      tmp_path: Path) -> None:
    """Rate and level come from the stored config through the config loader: a checkpoint
    from before data.level scores its input as decoded; a damaged value is named."""
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt["config"]["data"]["level"]
    old = tmp_path / "old.pt"
    save_checkpoint(old, ckpt)
    loaded = load_checkpoint(old)
    assert (loaded.level, loaded.level_db, loaded.sample_rate) == ("none", None, 16_000)
    for key, value, words in (("level", "loud", "data.level must be one of none, rms, peak"),
                              ("sample_rate", 100, "data.sample_rate must be between"),
                              ("level_db", "high", "data.level_db: expected a number")):
        ckpt["config"]["data"][key] = value
        bad = tmp_path / f"bad_{key}.pt"
        save_checkpoint(bad, ckpt)
        with pytest.raises(CheckpointError, match=f"damaged checkpoint: {words}") as info:
            load_checkpoint(bad)
        assert str(bad) in str(info.value)
        del ckpt["config"]["data"][key]
