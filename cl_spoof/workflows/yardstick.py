"""``cl-spoof yardstick``: the classical yardsticks on a run config's own benchmark.

Same utterance table, same experiences, same input as the detectors of ``run`` /
``compare`` on that config: every utterance decoded at ``data.sample_rate``, its
level set (``data.level``) and cut to ``data.num_samples`` from the start (the
detectors' evaluation input; short clips are repeated). Each yardstick
(:mod:`cl_spoof.models.classical`) is fitted once on the training rows of every
experience together (like ``joint`` training) and scored on every test experience:

- per experience (attack): EER of its spoofs against its bona fide, as in a run's
  EER matrix; ``mean``: their mean;
- ``pooled``: every test bona fide against every test spoof (each utterance once);
- with ``metrics.matched_by``: the **matched** EER of each experience, its spoofs
  against only the bona fide of their own sub-corpus, and its mean.

Writes into a new folder: ``yardstick.json`` (every number, EER in %),
``eers.csv`` (``yardstick, attack, eer, matched_eer``), ``scores/<yardstick>.txt``
(``utt_id attack key score``) and ``config.yaml``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cl_spoof.benchmark.loading import BenchmarkData, load_benchmark_data
from cl_spoof.benchmark.planning import joint_plan
from cl_spoof.config import RunConfig, to_yaml
from cl_spoof.data.audio import fix_length, set_level
from cl_spoof.data.table import BONAFIDE, utterance_groups
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.infra.files import atomic_dir, atomic_write_text
from cl_spoof.metrics.eer import compute_eer, matched_eer_per_attack
from cl_spoof.metrics.score_files import write_score_file
from cl_spoof.models.classical import YARDSTICKS, Yardstick
from cl_spoof.workflows.setup import resolve

__all__ = ["YardstickResult", "default_yardstick_dir", "parse_yardsticks", "run_yardstick",
           "yardstick_eers"]


@dataclass
class YardstickResult:
    """EERs (%) of each yardstick: per experience, their mean, pooled, matched."""

    out_dir: Path | None
    results: dict[str, dict[str, Any]]  # yardstick -> per_attack, mean, pooled, matched...
    attacks: list[str]
    seconds: float
    data: str = ""  # which utterances: the source and the counts
    scores: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per yardstick: every attack, ``mean``, ``pooled``, ``matched``."""
        rows = []
        for name, r in self.results.items():
            row = {"yardstick": name, **r["per_attack"], "mean": r["mean"],
                   "pooled": r["pooled"]}
            if r.get("matched_mean") is not None:
                row["matched"] = r["matched_mean"]
            rows.append(row)
        return pd.DataFrame(rows)


def parse_yardsticks(text: str) -> list[str]:
    """``"lfcc,ltas"`` -> the names, each checked against :data:`YARDSTICKS`."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in YARDSTICKS]
    if not names or unknown:
        raise ConfigError(f"unknown yardstick(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(YARDSTICKS)}")
    return names


def default_yardstick_dir(root: Path = Path("runs")) -> Path:
    """``runs/yardstick-<time>``."""
    return root / f"yardstick-{datetime.now():%Y%m%d-%H%M%S}"


def _inputs(cfg: RunConfig, data: BenchmarkData, rows: np.ndarray) -> list[np.ndarray]:
    """The detectors' evaluation input of ``rows``: level set, cut from the start."""
    d = cfg.data
    return [fix_length(set_level(data.waveforms.raw(int(r)), d.level, d.level_db),
                       d.num_samples) for r in rows]


def yardstick_eers(data: BenchmarkData, scores: pd.Series,
                   groups: pd.Series | None = None) -> dict[str, Any]:
    """EERs (%) of scores indexed by table row, over ``data``'s test experiences.

    Per experience: its spoofs against its bona fide (as a run's EER matrix);
    ``pooled``: the unique test rows; ``matched`` (with ``groups``, the sub-corpus of
    every table row): each experience's spoofs against its bona fide of their group.
    """
    labels = data.table["label"].to_numpy()
    per: dict[str, float] = {}
    matched: dict[str, float] = {}
    for p in data.plans:
        rows = p.test_rows
        bona = rows[labels[rows] == BONAFIDE]
        spoof = rows[labels[rows] != BONAFIDE]
        if not len(bona) or not len(spoof):
            per[p.attack] = float("nan")
            continue
        per[p.attack] = 100 * compute_eer(scores[bona], scores[spoof])[0]
        if groups is not None:
            frame = pd.DataFrame({"attack": [p.attack] * len(rows),
                                  "key": np.where(labels[rows] == BONAFIDE, "bonafide", "spoof"),
                                  "score": scores[rows].to_numpy(),
                                  "group": groups.to_numpy()[rows]})
            matched[p.attack] = 100 * matched_eer_per_attack(frame).get(p.attack, float("nan"))
    test = np.unique(np.concatenate([p.test_rows for p in data.plans]))
    is_bona = labels[test] == BONAFIDE
    pooled = 100 * compute_eer(scores[test[is_bona]], scores[test[~is_bona]])[0]
    out: dict[str, Any] = {"per_attack": per, "mean": float(np.nanmean(list(per.values()))),
                           "pooled": pooled}
    if groups is not None:
        out["matched"] = matched
        values = [v for v in matched.values() if not np.isnan(v)]
        out["matched_mean"] = float(np.mean(values)) if values else None
    return out


def run_yardstick(cfg: RunConfig, names: Sequence[str] = ("lfcc", "ltas"),
                  out_dir: Path | None = None,
                  on_stage: Callable[[str], None] | None = None,
                  progress: Callable[[str, int, int], None] | None = None) -> YardstickResult:
    """Fit and score every yardstick of ``names`` on ``cfg``'s benchmark; see the module.

    Writes into ``out_dir`` when given (it must not exist or be empty; nothing is
    written elsewhere). Raises :class:`CLSpoofError` for a non-empty ``out_dir`` or
    a benchmark without bona fide and spoof training rows.
    """
    start = time.perf_counter()
    cfg = resolve(cfg)
    if out_dir is not None and out_dir.exists() and any(out_dir.iterdir()):
        raise CLSpoofError(f"{out_dir}: folder exists and is not empty; choose another --out")
    data = load_benchmark_data(cfg.data, seed=cfg.seed, on_stage=on_stage, progress=progress)
    groups = (utterance_groups(data.table, cfg.metrics.matched_by)
              if cfg.metrics.matched_by else None)
    train = joint_plan(data.training_plans).train_rows  # every attack's, learned or not
    test = np.unique(np.concatenate([p.test_rows for p in data.plans]))
    labels = data.table["label"].to_numpy()
    if len(set(labels[train] == BONAFIDE)) < 2:
        raise CLSpoofError("the yardsticks need bona fide and spoof training utterances "
                           f"(data.train_split {cfg.data.train_split!r})")
    if on_stage is not None:
        on_stage("cutting the input clips")
    x_train, x_test = _inputs(cfg, data, train), _inputs(cfg, data, test)
    results: dict[str, dict[str, Any]] = {}
    frames: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(names):
        if on_stage is not None:
            on_stage(f"yardstick {name}: {YARDSTICKS[name][1]}")
        if progress is not None:
            progress("yardsticks", i, len(names))
        model = Yardstick(name, cfg.data.sample_rate).fit(x_train, labels[train] == BONAFIDE)
        scores = pd.Series(np.full(len(data.table), np.nan))
        scores[test] = model.scores(x_test)
        results[name] = yardstick_eers(data, scores, groups)
        frames[name] = pd.DataFrame({
            "utt_id": data.table["utt_id"].to_numpy()[test],
            "attack": data.table["attack"].to_numpy()[test],
            "key": np.where(labels[test] == BONAFIDE, "bonafide", "spoof"),
            "score": scores[test].to_numpy()})
    if progress is not None:
        progress("yardsticks", len(names), len(names))
    attacks = [p.attack for p in data.plans]
    n_train_bona = int((labels[train] == BONAFIDE).sum())
    n_test_bona = int((labels[test] == BONAFIDE).sum())
    summary = (f"{data.source}: {len(train)} training utterances ({n_train_bona} bona fide), "
               f"{len(test)} test utterances ({n_test_bona} bona fide), split "
               f"{cfg.data.train_split}/{cfg.data.test_split}, {cfg.data.sample_rate} Hz, "
               f"{cfg.data.num_samples} samples, level {cfg.data.level}")
    result = YardstickResult(out_dir, results, attacks, time.perf_counter() - start, summary,
                             frames)
    if out_dir is not None:
        with atomic_dir(out_dir) as tmp:  # all or nothing (Ctrl-C, a full disk)
            _write(tmp, cfg, result)
    return result


def _write(out_dir: Path, cfg: RunConfig, result: YardstickResult) -> None:
    """``config.yaml``, ``yardstick.json``, ``eers.csv`` and ``scores/<name>.txt``."""
    (out_dir / "scores").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", to_yaml(cfg))
    payload = {"data": result.data, "attacks": result.attacks, "eer_unit": "%",
               "matched_by": cfg.metrics.matched_by,
               "yardsticks": {n: {"what": YARDSTICKS[n][1], **r}
                              for n, r in result.results.items()}}
    atomic_write_text(out_dir / "yardstick.json", json.dumps(payload, indent=1) + "\n")
    rows = [{"yardstick": n, "attack": a, "eer": r["per_attack"][a],
             "matched_eer": (r.get("matched") or {}).get(a, float("nan"))}
            for n, r in result.results.items() for a in result.attacks]
    atomic_write_text(out_dir / "eers.csv", pd.DataFrame(rows).to_csv(index=False,
                                                                      float_format="%.4f"))
    for name, frame in result.scores.items():
        write_score_file(out_dir / "scores" / f"{name}.txt", frame)
