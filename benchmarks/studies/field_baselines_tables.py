"""The field-baseline tables (benchmarks/findings.md) from finished runs (mean ± population
std over seeds).

Each ROOT holds ``<name>/seed<k>/`` run directories (what ``cl-spoof compare --out
ROOT`` writes, or ``cl-spoof run --out ROOT/<name>/seed<k>``). For every name:
final average EER, BWT and max forgetting (``metrics.json``), the strategy state
in the last checkpoint against the model's size, the whole run's wall time against
naive's (median over seeds; runs that shared the machine the same way compare), and,
with ``--epoch-times``, the epoch time vs naive from
``results/field_baselines_overhead.json`` (measured on the demo)::

    python -m benchmarks.studies.field_baselines_tables ROOT [ROOT ...] [--names naive,dfwf,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._common import RESULTS
from cl_spoof.rundir import RunDir

KEEPS = {"replay": "200 clips", "dfwf+replay": "200 clips"}


def tensor_bytes(obj: object) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def runs_of(roots: list[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for root in roots:
        for metrics in sorted(root.glob("*/seed*/metrics.json")):
            status = RunDir(metrics.parent).status()  # metrics.json grows stage by stage:
            if status is not None and status.get("finished"):  # finished runs only
                found.setdefault(metrics.parent.parent.name, []).append(metrics.parent)
    return found


def learning_eer(run_dir: Path) -> float:
    """Mean over attacks of each attack's EER right after the stage that learned it."""
    matrix = pd.read_csv(run_dir / "eer_matrix.csv").drop(columns=["stage", "trained_on"])
    return float(np.mean(np.diag(matrix.to_numpy(dtype=float))))


def cell(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.2f} ± {a.std(ddof=0):.2f}" if len(a) > 1 else f"{a.mean():.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", type=Path)
    ap.add_argument("--names", default="", help="row order (default: as found)")
    ap.add_argument("--learning-eer", action="store_true",
                    help="add each attack's EER at the stage that learned it (mean; plasticity)")
    ap.add_argument("--epoch-times", action="store_true",
                    help="add the demo's epoch time vs naive (field_baselines_overhead.json)")
    args = ap.parse_args()
    runs = runs_of(args.roots)
    names = [n for n in args.names.split(",") if n] or list(runs)
    overhead_file = RESULTS / "field_baselines_overhead.json"
    overhead = (json.loads(overhead_file.read_text())["methods"]
                if overhead_file.is_file() and args.epoch_times else {})
    seconds = {name: np.median([RunDir(d).status()["seconds"] for d in dirs])
               for name, dirs in runs.items()}
    print("| method | keeps old audio | seeds | final avg EER % | BWT (pts) | max forgetting (pts) "
          + ("| EER at the learning stage (mean) " if args.learning_eer else "")
          + ("| epoch time vs naive (demo) " if args.epoch_times else "")
          + "| whole run vs naive | state kept (× model) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|"
          + "---:|" * (int(args.epoch_times) + int(args.learning_eer)))
    for name in names:
        dirs = runs.get(name, [])
        if not dirs:
            continue
        metrics = [json.loads((d / "metrics.json").read_text()) for d in dirs]
        last = sorted((dirs[0] / "checkpoints").glob("stage_*.pt"),
                      key=lambda p: int(p.stem.split("_")[1]))[-1]
        ckpt = torch.load(last, weights_only=True)
        state = tensor_bytes(ckpt["strategy_state"]) / tensor_bytes(ckpt["model_state"])
        ratio = overhead.get(name, {}).get("epoch_ratio")
        epoch = f"| {'—' if ratio is None else f'{ratio:.2f}×'} " if args.epoch_times else ""
        if args.learning_eer:
            epoch = f"| {cell([learning_eer(d) for d in dirs])} " + epoch
        run = (f"{seconds[name] / seconds['naive']:.2f}×" if "naive" in seconds else "—")
        print(f"| {name} | {KEEPS.get(name, 'no')} | {len(dirs)} "
              f"| {cell([m['final_avg_eer'] for m in metrics])} "
              f"| {cell([m['bwt'] for m in metrics])} "
              f"| {cell([m['max_forgetting'] for m in metrics])} "
              f"{epoch}| {run} | {state:.2f} |")


if __name__ == "__main__":
    main()
