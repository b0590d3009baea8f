"""Several strategies x seeds on one benchmark, and the comparison table.

Every run uses the same data (loaded and cached once), the same initial
weights per seed (the model is built right after seeding, before anything
strategy-specific) and the same data order per stage (the runner reseeds at
every stage). Layout of a compare directory::

    compare.json                 what was asked (strategies, seeds)
    <strategy>/seed<k>/          one run directory each (see cl_spoof.runner)
    comparison.csv, comparison.md
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cl_spoof.benchmark import load_benchmark_data
from cl_spoof.config import RunConfig, to_yaml, with_overrides
from cl_spoof.errors import CLSpoofError
from cl_spoof.io import atomic_path, atomic_write_text
from cl_spoof.runner import RunEvents, run_experiment
from cl_spoof.strategies import check_strategy_name

METRICS = ("final_avg_eer", "bwt", "max_forgetting")


def run_dir_name(strategy: str) -> str:
    """Folder name of a strategy inside a compare directory (``dfwf+replay`` → ``dfwf_replay``)."""
    return strategy.replace("+", "_")


def parse_strategies(text: str) -> list[str]:
    """``"naive, dfwf"`` → ``["naive", "dfwf"]``, each name checked."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise CLSpoofError("--strategies names no strategy")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CLSpoofError(f"--strategies lists {', '.join(dup)} twice")
    return [check_strategy_name(n) for n in names]


def run_compare(cfg: RunConfig, strategies: Sequence[str], seeds: Sequence[int], out_dir: Path,
                events: RunEvents | None = None, resume: bool = False) -> pd.DataFrame:
    """Run every strategy for every seed under ``out_dir``; returns the comparison table.

    With ``resume`` an interrupted compare directory is completed: finished runs
    are kept, interrupted ones resumed, missing ones started.
    """
    events = events or RunEvents()
    out_dir = Path(out_dir)
    spec = {"strategies": list(strategies), "seeds": list(seeds)}
    if resume:
        saved = json.loads((out_dir / "compare.json").read_text())
        if saved != spec:
            raise CLSpoofError(f"{out_dir}/compare.json asks for {saved}, not {spec}")
    else:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise CLSpoofError(f"{out_dir}: compare directory exists and is not empty; "
                               "choose another --out, or --resume it (nothing was overwritten)")
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.yaml", to_yaml(cfg))
        atomic_write_text(out_dir / "compare.json", json.dumps(spec, indent=2) + "\n")
    data = load_benchmark_data(cfg.data, seed=cfg.seed, on_stage=events.on_stage,
                               progress=events.on_progress)
    total = len(strategies) * len(seeds)
    done = 0
    for seed in seeds:
        for name in strategies:
            done += 1
            run_dir = out_dir / run_dir_name(name) / f"seed{seed}"
            status = run_dir / "run.json"
            if status.is_file() and json.loads(status.read_text()).get("finished"):
                events.on_stage(f"run {done}/{total}: {name}, seed {seed} (already finished)")
                continue
            started = run_dir.is_dir() and any(run_dir.iterdir())
            events.on_stage(f"run {done}/{total}: {name}, seed {seed}"
                            + (" (resuming)" if started else ""))
            run_cfg = with_overrides(cfg, strategy={"name": name}, seed=seed)
            run_experiment(run_cfg, run_dir, events, data=data, resume=started)
    table = comparison_table(collect_metrics(out_dir, strategies, seeds))
    write_comparison(out_dir, table)
    return table


def load_compare_spec(out_dir: Path) -> tuple[RunConfig, list[str], list[int]]:
    """Config, strategies and seeds of an existing compare directory (for ``--resume``)."""
    from cl_spoof.config import load_config

    spec_file = Path(out_dir) / "compare.json"
    if not spec_file.is_file():
        raise CLSpoofError(f"{out_dir}: not a compare directory (no compare.json)")
    spec = json.loads(spec_file.read_text())
    return load_config(Path(out_dir) / "config.yaml"), spec["strategies"], spec["seeds"]


def collect_metrics(out_dir: Path, strategies: Sequence[str], seeds: Sequence[int]
                    ) -> pd.DataFrame:
    """One row per finished run: strategy, seed and its headline metrics."""
    rows = []
    for name in strategies:
        for seed in seeds:
            path = out_dir / run_dir_name(name) / f"seed{seed}" / "metrics.json"
            if not path.is_file():
                raise CLSpoofError(f"{path}: missing (the run did not finish)")
            m = json.loads(path.read_text())
            rows.append({"strategy": name, "seed": seed,
                         **{k: (np.nan if m.get(k) is None else m[k]) for k in METRICS}})
    return pd.DataFrame(rows)


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
    cols = [*METRICS, "eer_reduction_vs_naive"]
    order = list(dict.fromkeys(per_run.strategy))
    grouped = per_run.groupby("strategy", sort=False)
    mean = grouped[cols].mean().add_suffix("_mean")
    std = grouped[cols].std(ddof=1).add_suffix("_std")  # NaN for a single seed
    table = pd.concat([grouped.size().rename("seeds"), mean, std], axis=1).loc[order]
    ordered = ["seeds"] + [f"{c}_{s}" for c in cols for s in ("mean", "std")]
    return table[ordered].reset_index()


def _pm(mean: float, std: float, signed: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    fmt = "{:+.2f}" if signed else "{:.2f}"
    text = fmt.format(mean)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {std:.2f}"
    return text


def comparison_display(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison as ``mean ± std`` strings, for the terminal and Markdown."""
    return pd.DataFrame({
        "strategy": table.strategy,
        "seeds": table.seeds,
        "final avg EER %": [_pm(m, s) for m, s in
                            zip(table.final_avg_eer_mean, table.final_avg_eer_std, strict=True)],
        "BWT (pts)": [_pm(m, s, True) for m, s in zip(table.bwt_mean, table.bwt_std,
                                                      strict=True)],
        "max forgetting (pts)": [_pm(m, s) for m, s in
                                 zip(table.max_forgetting_mean, table.max_forgetting_std,
                                     strict=True)],
        "EER reduction vs naive %": [
            _pm(m, s, True) for m, s in zip(table.eer_reduction_vs_naive_mean,
                                            table.eer_reduction_vs_naive_std, strict=True)],
    })


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (no extra dependency)."""
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(df.columns))) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, sep, *body]) + "\n"


def write_comparison(out_dir: Path, table: pd.DataFrame) -> None:
    """``comparison.csv`` (numbers) and ``comparison.md`` (mean ± std), atomically."""
    with atomic_path(out_dir / "comparison.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    md = ("EER in %, BWT and forgetting in EER points (BWT < 0 and forgetting > 0 mean the "
          "detector forgot); mean ± std over seeds.\n\n" + to_markdown(comparison_display(table)))
    atomic_write_text(out_dir / "comparison.md", md)
