"""The classical yardsticks, the matched EER and sub-corpus groups, the sample-rate-aware
cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import config_from_dict
from cl_spoof.data.cache import WaveformCache
from cl_spoof.data.table import utterance_groups
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.metrics.eer import matched_eer_per_attack
from cl_spoof.models.classical import YARDSTICKS, Yardstick
from cl_spoof.workflows.yardstick import run_yardstick
from tests.helpers.checks import eers_from_scores

runner = CliRunner()
SR = 16_000


def _tones_and_noise(n: int, seed: int) -> tuple[list[np.ndarray], list[bool]]:
    """Bona fide: harmonic tones; spoof: white noise (separable by any spectrum summary)."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR // 2) / SR
    waves, bona = [], []
    for i in range(n):
        if i % 2 == 0:
            f0 = rng.uniform(100, 300)
            w = sum(0.1 / h * np.sin(2 * np.pi * f0 * h * t) for h in range(1, 5))
        else:
            w = 0.1 * rng.standard_normal(len(t))
        waves.append(w.astype(np.float32))
        bona.append(i % 2 == 0)
    return waves, bona


@pytest.mark.parametrize("kind", list(YARDSTICKS))
def test_yardstick_separates_a_separable_set(kind: str) -> None:
    x_train, y_train = _tones_and_noise(20, 0)
    x_test, y_test = _tones_and_noise(20, 1)
    model = Yardstick(kind, SR).fit(x_train, y_train)
    scores = model.scores(x_test)
    assert scores.shape == (20,)
    y = np.asarray(y_test)
    assert scores[y].min() > scores[~y].max()  # EER 0: every bona fide above every spoof
    np.testing.assert_array_equal(scores, Yardstick(kind, SR).fit(x_train, y_train)
                                  .scores(x_test))  # deterministic


def test_yardstick_feature_sizes() -> None:
    waves = [np.zeros(SR, dtype=np.float32) + 0.01] * 2
    assert Yardstick("lfcc", SR).features(waves).shape == (2, 80)
    assert Yardstick("ltas", SR).features(waves).shape == (2, 2 * 513)
    assert Yardstick("ltas", 24_000).features([np.zeros(24_000, np.float32)]).shape == (1, 1538)
    assert Yardstick("ltas128", 24_000).features([np.zeros(24_000, np.float32)]).shape \
        == (1, 3074)
    with pytest.raises(ValueError, match="unknown yardstick"):
        Yardstick("mfcc", SR)


def test_matched_eer_uses_only_the_attacks_own_bona_fide() -> None:
    """Hand-worked: group g1's bona fide score far below g2's; attack X (from g1) is
    perfectly separated from g1's bona fide but overlaps g2's."""
    frame = pd.DataFrame({
        "attack": ["-", "-", "-", "-", "X", "X", "Y", "Y"],
        "key": ["bonafide"] * 4 + ["spoof"] * 4,
        "score": [1.0, 2.0, 10.0, 11.0, 0.0, 0.5, 9.0, 12.0],
        "group": ["g1", "g1", "g2", "g2", "g1", "g1", "g2", "g2"],
    })
    matched = matched_eer_per_attack(frame)
    assert matched["X"] == 0.0
    assert matched["Y"] == pytest.approx(0.5)
    frame.loc[frame["group"] == "g1", "group"] = "g3"
    frame.loc[frame["attack"] == "X", "group"] = "g1"
    assert np.isnan(matched_eer_per_attack(frame)["X"])  # no bona fide in its group
    with pytest.raises(ValueError, match="group"):
        matched_eer_per_attack(frame.drop(columns="group"))


def test_utterance_groups_by_folder_or_column() -> None:
    table = pd.DataFrame({"path": ["/d/corpus/a/x/1.wav", "/d/corpus/a/2.wav",
                                   "/d/corpus/b/3.wav", "/d/corpus/4.wav"],
                          "source": ["s1", "s1", "s2", "s2"]})
    assert utterance_groups(table, "folder").tolist() == ["a", "a", "b", ""]
    assert utterance_groups(table, "source").tolist() == ["s1", "s1", "s2", "s2"]
    with pytest.raises(ConfigError, match="metrics.matched_by"):
        utterance_groups(table, "corpus")


def test_cache_keys_include_the_sample_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, (0.1 * np.sin(np.arange(24_000) / 7)).astype(np.float32), 24_000)
    at16 = WaveformCache(tmp_path / "c", sample_rate=16_000, max_samples=30_000)
    at24 = WaveformCache(tmp_path / "c", sample_rate=24_000, max_samples=30_000)
    assert at16.key([str(path)]) != at24.key([str(path)])
    v16, _ = at16.load([str(path)])
    v24, _ = at24.load([str(path)])
    assert at24.decoded == 1  # the 16 kHz entry is not reused
    assert (int(v16.lengths[0]), int(v24.lengths[0])) == (16_000, 24_000)
    at24.load([str(path)])
    assert at24.decoded == 0  # its own entry is


def _tiny_cfg(manifest: Path, **data: object):
    return config_from_dict({
        "data": {"source": str(manifest), "num_samples": 4000, "test_split": "dev",
                 **data},
        "model": {"preset": "tiny"},
        "metrics": {"matched_by": "folder"},
    })


def test_yardstick_workflow_on_the_run_benchmark(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = _tiny_cfg(tiny_corpus)
    out = tmp_path / "ys"
    result = run_yardstick(cfg, ["lfcc", "ltas"], out)
    assert result.attacks == ["T1", "T2"]
    table = result.table()
    assert list(table["yardstick"]) == ["lfcc", "ltas"]
    assert {"T1", "T2", "mean", "pooled", "matched"} <= set(table.columns)
    eer = table[["T1", "T2", "pooled"]]
    assert (eer <= 50).all().all()  # better than chance on the synthetic attacks
    payload = json.loads((out / "yardstick.json").read_text())
    assert payload["yardsticks"]["lfcc"]["per_attack"] == result.results["lfcc"]["per_attack"]
    eers = pd.read_csv(out / "eers.csv")
    assert len(eers) == 4 and set(eers["yardstick"]) == {"lfcc", "ltas"}
    lines = (out / "scores" / "lfcc.txt").read_text().splitlines()
    assert len(lines) == 30  # 10 bona fide + 2 x 10 spoofs of the dev split
    eers = eers_from_scores(out / "scores" / "lfcc.txt")
    lfcc = result.results["lfcc"]
    assert lfcc["pooled"] == pytest.approx(eers["pooled"], abs=1e-3)
    assert lfcc["per_attack"] == pytest.approx({a: eers[a] for a in ("T1", "T2")}, abs=1e-3)
    with pytest.raises(CLSpoofError, match="not empty"):
        run_yardstick(cfg, ["lfcc"], out)


def test_yardstick_command(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: {{source: {tiny_corpus}, num_samples: 4000, test_split: dev}}\n")
    res = runner.invoke(app, ["yardstick", str(cfg), "--yardsticks", "lfcc",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "lfcc" in res.output and (tmp_path / "o" / "yardstick.json").is_file()
    bad = runner.invoke(app, ["yardstick", str(cfg), "--yardsticks", "mfcc"])
    assert bad.exit_code == 2 and "unknown yardstick" in bad.output


def test_yardstick_interrupted_while_writing_leaves_no_folder(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cl_spoof.workflows.yardstick as ys

    def ctrl_c(*args: object) -> None:  # Ctrl-C after the first files were written
        raise KeyboardInterrupt

    monkeypatch.setattr(ys, "write_score_file", ctrl_c)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: {{source: {tiny_corpus}, num_samples: 4000, test_split: dev}}\n")
    out = tmp_path / "o"
    res = runner.invoke(app, ["yardstick", str(cfg), "--yardsticks", "lfcc", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert "nothing was written" in res.output and "run the same command again" in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == [cfg]  # no half or hidden folder
    monkeypatch.undo()
    res = runner.invoke(app, ["yardstick", str(cfg), "--yardsticks", "lfcc", "--out", str(out)])
    assert res.exit_code == 0, res.output  # the same command again works
    assert (out / "yardstick.json").is_file() and (out / "scores" / "lfcc.txt").is_file()
