"""Runs → numbers: matrices averaged over seeds, the comparison table, the CSV tables.

Pure pandas/numpy; every figure and document of a report is drawn from these.
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
from cl_spoof.metrics.definitions import per_stage_metrics, run_keys
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
    """All runs of one strategy, their matrices averaged over seeds."""

    name: str
    slug: str  # file-name form of ``name``
    seeds: list[int]
    paths: list[Path]
    attacks: list[str]
    learned: list[str]
    mean: np.ndarray  # stages x attacks
    std: np.ndarray  # stages x attacks; NaN for a single seed
    official: pd.DataFrame | None = None  # stage x official metrics, mean over seeds
    stages: list[int] = field(default_factory=list)  # each row's stage number (0: pretrained)

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
        stage's for every attack of a joint run)."""
        if self.joint:
            return self.learned.index(JOINT)
        return self.learned.index(attack) if attack in self.learned else None

    def learned_stage(self, attack: str) -> int | None:
        """The number of the stage that learned ``attack`` (the joint stage's for every
        attack of a joint run)."""
        row = self.learned_row(attack)
        return None if row is None else self.stages[row]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir_name(name)) or "strategy"


def group_strategies(runs: Sequence[RunRecord]) -> list[StrategyData]:
    """One :class:`StrategyData` per strategy (first-seen order), matrices averaged over seeds."""
    attacks = list(runs[0].attacks)
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.strategy, []).append(run)
    out: list[StrategyData] = []
    slugs: set[str] = set()
    for name, members in groups.items():
        members = sorted(members, key=lambda r: r.seed)
        ref = members[0]
        for run in members[1:]:
            if run.learned != ref.learned or run.stages != ref.stages:
                raise ReportError(f"{run.path}: learns attacks in the order "
                                  f"{', '.join(run.learned)}, unlike {ref.path} "
                                  f"({', '.join(ref.learned)}); seeds of one strategy must "
                                  "share the stage order to be averaged")
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
                                stages=list(ref.stages)))
    return out


def comparison_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per strategy, plus the relative EER reduction vs ``naive``.

    The reduction is ``100 * (EER_naive - EER_s) / EER_naive`` per seed (same seed =
    same initial weights and data order), then averaged; NaN when naive was not run.
    """
    per_run = per_run.copy()
    naive = per_run[per_run.strategy == "naive"].set_index("seed")["final_avg_eer"]
    per_run["eer_reduction_vs_naive"] = [
        100.0 * (naive[s] - e) / naive[s]
        if name != "naive" and s in naive.index and naive[s] > 0 else np.nan
        for name, s, e in zip(per_run.strategy, per_run.seed, per_run.final_avg_eer, strict=True)
    ]
    cols = [*run_keys(), "eer_reduction_vs_naive"]
    order = list(dict.fromkeys(per_run.strategy))
    grouped = per_run.groupby("strategy", sort=False)
    mean = grouped[cols].mean().add_suffix("_mean")
    std = grouped[cols].std(ddof=1).add_suffix("_std")  # NaN for a single seed
    table = pd.concat([grouped.size().rename("seeds"), mean, std], axis=1).loc[order]
    ordered = ["seeds"] + [f"{c}_{s}" for c in cols for s in ("mean", "std")]
    return table[ordered].reset_index()


def summary_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """:func:`comparison_table` of the runs; std is NaN for a single seed."""
    rows = [{"strategy": r.strategy, "seed": r.seed,
             **{k: (np.nan if r.metrics.get(k) is None else float(r.metrics[k]))
                for k in run_keys()}} for r in runs]
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
    """Final EER per strategy and attack (mean and std over seeds), long format."""
    rows = [{"strategy": s.name, "seeds": len(s.seeds), "attack": a,
             "eer_mean": s.mean[-1, j], "eer_std": s.std[-1, j]}
            for s in strategies for j, a in enumerate(s.attacks)]
    return pd.DataFrame(rows)


def runs_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Which run directory gave which strategy and seed."""
    return pd.DataFrame([{"strategy": s.name, "seed": seed, "run_dir": str(p)}
                         for s in strategies for seed, p in zip(s.seeds, s.paths, strict=True)])
