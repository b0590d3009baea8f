"""Runs → numbers: matrices averaged over seeds, the comparison table, the CSV tables.

Runs are grouped by their label (the seeds of one setting); pure pandas/numpy; every
figure and document of a report is drawn from these.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cl_spoof.labels import JOINT, PRETRAINED
from cl_spoof.metrics.continual import learned_at, summarize
from cl_spoof.metrics.definitions import METRICS, per_stage_metrics, run_keys
from cl_spoof.reporting.runs import ReportError, RunRecord
from cl_spoof.rundir import run_dir_name


def official_frame(runs: Sequence[RunRecord]) -> pd.DataFrame | None:
    """Stage x official metric, mean over the runs that have them (``None`` when none)."""
    keys = [m.key for m in per_stage_metrics()]  # metrics.json, "official"
    frames = []
    for run in runs:
        entries = run.metrics.get("official")
        if not isinstance(entries, list) or not entries:
            continue
        frame = pd.DataFrame([{k: e.get(k) for k in ("stage", "trained_on", *keys)}
                              for e in entries if isinstance(e, dict)])
        frames.append(frame)
    if not frames:
        return None
    joined = pd.concat(frames, ignore_index=True)
    numbers = joined[keys].apply(pd.to_numeric, errors="coerce")
    joined[keys] = numbers
    out = joined.groupby(["stage", "trained_on"], sort=True)[keys].mean()
    out = out.reset_index().dropna(axis=1, how="all")
    out.insert(len(out.columns), "runs", len(frames))
    return out


@dataclass
class StrategyData:
    """All runs of one label (the seeds of one setting), their matrices averaged over
    seeds."""

    name: str  # the runs' label
    slug: str  # file-name form of ``name``
    seeds: list[int]
    paths: list[Path]
    attacks: list[str]
    learned: list[str]
    mean: np.ndarray  # stages x attacks
    std: np.ndarray  # stages x attacks; NaN for a single seed
    official: pd.DataFrame | None = None  # stage x official metrics, mean over seeds
    stages: list[int] = field(default_factory=list)  # each row's stage number (0: pretrained)
    strategy: str = ""  # the continual-learning strategy of the runs
    runs: list[RunRecord] = field(default_factory=list)  # the runs, by seed
    # stage label -> the attacks it learned, when stages learn families of attacks
    families: dict[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if not self.stages:  # trained stages only, numbered from 1
            self.stages = list(range(1, len(self.learned) + 1))

    @property
    def joint(self) -> bool:
        """A single joint-training stage that learned every attack (after the starting
        model's stage 0, if any)."""
        return [a for a in self.learned if a != PRETRAINED] == [JOINT]

    @property
    def caption(self) -> str:
        """How the numbers were obtained: the seed, or averaged over N seeds."""
        if len(self.seeds) == 1:
            return f"single run (seed {self.seeds[0]})"
        return f"mean of {len(self.seeds)} seeds ({', '.join(map(str, self.seeds))})"

    def learned_row(self, attack: str) -> int | None:
        """The matrix row (position) of the stage that learned ``attack`` (the joint
        stage's for every attack of a joint run; its family's stage when stages learn
        families)."""
        if self.families:  # before joint: a joint stage may leave held-out attacks unlearned
            return learned_at(self.attacks, self.learned, self.families).get(attack)
        if self.joint:
            return self.learned.index(JOINT)
        return self.learned.index(attack) if attack in self.learned else None

    def learned_stage(self, attack: str) -> int | None:
        """The number of the stage that learned ``attack`` (the joint stage's for every
        attack of a joint run)."""
        row = self.learned_row(attack)
        return None if row is None else self.stages[row]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_dir_name(name)).strip("_") or "run"


def stage_numbers(s: StrategyData) -> list[int]:
    """The number of each matrix row's stage, as the run's files number it."""
    return list(s.stages)


def group_strategies(runs: Sequence[RunRecord]) -> list[StrategyData]:
    """One :class:`StrategyData` per label (first-seen order), matrices averaged over seeds."""
    attacks = list(runs[0].attacks)
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.label or run.strategy, []).append(run)
    out: list[StrategyData] = []
    slugs: set[str] = set()
    for name, members in groups.items():
        members = sorted(members, key=lambda r: r.seed)
        ref = members[0]
        for run in members[1:]:
            if run.learned != ref.learned or run.stages != ref.stages \
                    or run.families != ref.families:
                raise ReportError(f"{run.path}: learns attacks in the order "
                                  f"{', '.join(run.learned)}, unlike {ref.path} "
                                  f"({', '.join(ref.learned)}); seeds of one label must "
                                  "share the stage order (and families) to be averaged")
        stack = np.stack([r.eer[:, [list(r.attacks).index(a) for a in attacks]]
                          for r in members])
        with warnings.catch_warnings():  # an all-NaN cell stays NaN ("n/a"), silently
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0)
            std = (np.nanstd(stack, axis=0, ddof=1) if len(members) > 1
                   else np.full_like(mean, np.nan))
        slug = _slug(name)
        while slug in slugs:
            slug += "_"
        slugs.add(slug)
        out.append(StrategyData(name=name, slug=slug, seeds=[r.seed for r in members],
                                paths=[r.path for r in members], attacks=attacks,
                                learned=list(ref.learned), mean=mean, std=std,
                                official=official_frame(members),
                                stages=list(ref.stages), strategy=ref.strategy,
                                runs=list(members), families=ref.families))
    return out


def reference_label(per_run: pd.DataFrame) -> str | None:
    """The runs the EER reduction is measured against: those labelled ``naive``, else the
    only label of naive fine-tuning runs (None when there is no such single label)."""
    labels = list(dict.fromkeys(per_run.label))
    if "naive" in labels:
        return "naive"
    naive = list(dict.fromkeys(per_run.label[per_run.strategy == "naive"]))
    return naive[0] if len(naive) == 1 else None


def comparison_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per label, plus the relative EER reduction vs naive.

    ``per_run`` has one row per run: ``strategy``, ``seed``, its headline metrics and
    (optionally) ``label`` (default: the strategy). The reduction is
    ``100 * (EER_naive - EER_s) / EER_naive`` per seed (same seed = same initial weights
    and data order) against the runs of :func:`reference_label`, then averaged; NaN when
    there is none.
    """
    per_run = per_run.copy()
    if "label" not in per_run.columns:
        per_run.insert(0, "label", per_run["strategy"])
    ref = reference_label(per_run)
    naive = (per_run[per_run.label == ref].set_index("seed")["final_avg_eer"] if ref is not None
             else pd.Series(dtype=float))
    per_run["eer_reduction_vs_naive"] = [
        100.0 * (naive[s] - e) / naive[s]
        if name != ref and s in naive.index and naive[s] > 0 else np.nan
        for name, s, e in zip(per_run.label, per_run.seed, per_run.final_avg_eer, strict=True)
    ]
    cols = [*run_keys(), "eer_reduction_vs_naive"]
    order = list(dict.fromkeys(per_run.label))
    grouped = per_run.groupby("label", sort=False)
    mean = grouped[cols].mean().add_suffix("_mean")
    std = grouped[cols].std(ddof=1).add_suffix("_std")  # NaN for a single seed
    table = pd.concat([grouped["strategy"].first(), grouped.size().rename("seeds"), mean, std],
                      axis=1).loc[order]
    ordered = ["strategy", "seeds"] + [f"{c}_{s}" for c in cols for s in ("mean", "std")]
    return table[ordered].reset_index()


def headline_metrics(run: RunRecord) -> dict[str, float]:
    """The run's headline metrics (:func:`run_keys`) from its ``metrics.json``; a continual
    metric it lacks (a run of an older cl-spoof) is computed from its EER matrix."""
    values = dict(run.metrics)
    missing = [m for m in METRICS.values() if m.kind == "continual" and m.run_key not in values
               and m.from_matrix is not None]
    if missing:
        matrix = pd.DataFrame(run.eer, columns=list(run.attacks))
        for metric in missing:
            assert metric.from_matrix is not None
            values[metric.run_key] = metric.from_matrix(matrix, list(run.learned), run.families)
    return {k: (np.nan if values.get(k) is None else float(values[k])) for k in run_keys()}


def summary_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """:func:`comparison_table` of the runs (by label); std is NaN for a single seed."""
    rows = [{"label": r.label or r.strategy, "strategy": r.strategy, "seed": r.seed,
             **headline_metrics(r)} for r in runs]
    table = comparison_table(pd.DataFrame(rows))
    std_cols = [c for c in table.columns if c.endswith("_std")]
    table.loc[table.seeds < 2, std_cols] = np.nan
    return table


def matrix_table(s: StrategyData) -> pd.DataFrame:
    """``stage, trained_on, <attacks>``: the strategy's EER matrix (mean over seeds)."""
    df = pd.DataFrame(s.mean, columns=s.attacks)
    df.insert(0, "trained_on", s.learned)
    df.insert(0, "stage", s.stages)
    return df


def forgetting_table(s: StrategyData) -> pd.DataFrame:
    """Long format behind a forgetting panel: one row per stage and attack."""
    rows = []
    for k, trained in enumerate(s.learned):
        for j, attack in enumerate(s.attacks):
            rows.append({"stage": s.stages[k], "trained_on": trained, "attack": attack,
                         "learned_at_stage": s.learned_stage(attack),
                         "eer_mean": s.mean[k, j], "eer_std": s.std[k, j],
                         "seeds": len(s.seeds)})
    return pd.DataFrame(rows).astype({"learned_at_stage": "Int64"})


def final_eer_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Final EER per label and attack (mean and std over seeds), long format: the
    numbers behind the per-attack bars."""
    rows = [{"label": s.name, "strategy": s.strategy, "seeds": len(s.seeds), "attack": a,
             "eer_mean": s.mean[-1, j], "eer_std": s.std[-1, j]}
            for s in strategies for j, a in enumerate(s.attacks)]
    return pd.DataFrame(rows)


def runs_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Which run directory gave which label, strategy and seed."""
    return pd.DataFrame([{"label": s.name, "strategy": s.strategy, "seed": seed,
                          "run_dir": str(p)}
                         for s in strategies for seed, p in zip(s.seeds, s.paths, strict=True)])


def _with_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (ddof 1; NaN for one seed) over the first axis, NaN-aware, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(values, axis=0)
        std = (np.nanstd(values, axis=0, ddof=1) if len(values) > 1
               else np.full_like(mean, np.nan))
    return mean, std


def average_eer_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Average EER after every stage, per label (mean and std over seeds): over the
    attacks learned so far (``avg_eer_learned``, every attack for joint training) and over
    all attacks (``avg_eer_all``); the numbers behind the average-EER-by-stage figure."""
    rows = []
    for s in strategies:
        learned, every = [], []
        for run in s.runs:
            matrix = pd.DataFrame(run.eer[:, [list(run.attacks).index(a) for a in s.attacks]],
                                  columns=s.attacks)
            learned.append([np.nan if v is None else v
                            for v in summarize(matrix, list(run.learned))["avg_eer_learned"]])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                every.append(np.nanmean(matrix.to_numpy(dtype=float), axis=1))
        l_mean, l_std = _with_std(np.asarray(learned, dtype=float))
        a_mean, a_std = _with_std(np.asarray(every, dtype=float))
        for k, (stage, trained) in enumerate(zip(stage_numbers(s), s.learned, strict=True)):
            rows.append({"label": s.name, "strategy": s.strategy, "stage": stage,
                         "trained_on": trained, "avg_eer_learned_mean": l_mean[k],
                         "avg_eer_learned_std": l_std[k], "avg_eer_all_mean": a_mean[k],
                         "avg_eer_all_std": a_std[k], "seeds": len(s.seeds)})
    return pd.DataFrame(rows)


#: Step (normal deviates) below which neighbouring points of a DET curve are merged: the
#: curve keeps its shape on the plot at a few hundred points, whatever the trials.
DET_STEP = 0.01


def det_curve_points(name: str, bona: np.ndarray, spoof: np.ndarray) -> pd.DataFrame:
    """One DET curve: bona fide against spoof scores (higher = more bona fide) swept over
    every threshold as the organisers' EER is (:func:`cl_spoof.metrics.eer.compute_det_curve`).
    Columns ``curve`` (``name``), ``eer``, ``far``, ``frr`` (rates in %); points closer than
    :data:`DET_STEP` normal deviates to the previous one are left out."""
    from scipy.stats import norm

    from cl_spoof.metrics.eer import compute_det_curve, compute_eer

    frr, far, _ = compute_det_curve(bona, spoof)
    grid = np.round(norm.ppf(np.clip(np.stack([far, frr]), 1e-6, 1 - 1e-6)) / DET_STEP)
    keep = np.ones(len(far), dtype=bool)
    keep[1:] = (grid[:, 1:] != grid[:, :-1]).any(axis=0)
    keep[-1] = True
    return pd.DataFrame({"curve": name, "eer": 100.0 * compute_eer(bona, spoof)[0],
                         "far": 100.0 * far[keep], "frr": 100.0 * frr[keep]})


def det_points(scores: pd.DataFrame) -> pd.DataFrame:
    """DET curves of one stage's scores (:func:`det_curve_points`): every attack's spoofs
    against all bona fide, and all spoofs pooled (``curve`` = the attack, or ``pooled``)."""
    key = scores["key"].astype(str)
    bona = scores.loc[key == "bonafide", "score"].to_numpy(dtype=float)
    spoof_rows = scores[key == "spoof"]
    curves = [(str(a), spoof_rows.loc[spoof_rows["attack"] == a, "score"])
              for a in pd.unique(spoof_rows["attack"]) if str(a) not in ("", "-", "nan")]
    curves.append(("pooled", spoof_rows["score"]))
    frames = [det_curve_points(name, bona, spoof.to_numpy(dtype=float))
              for name, spoof in curves if len(bona) and len(spoof)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["curve", "eer", "far", "frr"])
