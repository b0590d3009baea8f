"""Whole utterances against 2-s starts: the real sequence's final detectors and yardsticks.

A run's EER matrix (and ``cl-spoof yardstick``) judges every test utterance on its first
``data.num_samples`` samples (2 s on the real sequence); the utterances are longer (the
shared set's median 1.8 s, the built sets' 3.7-5.1 s, up to 31 s). This study asks how
much of the gap to the yardsticks is that crop. On a finished ``real_sequence`` study
(``--runs``, default ``runs/real_sequence``), resumably:

1. the last checkpoint of every finished run (``--strategies`` x ``--seeds``) scores every
   test utterance whole, as ``cl-spoof evaluate --whole-file`` does (the mean over 2-s
   windows, 1 s apart), into ``<runs>/whole_file/<strategy>/seed<k>.txt``;
2. the yardsticks are fitted again on ``--long-samples`` samples of every utterance (8 s
   by default; shorter ones repeated, as the detectors' inputs are) into
   ``<runs>/yardstick_<N>``.

Table: per strategy, the final matched EER on the starts (the run's own) and on whole
files, their difference over the seeds (paired t-test, ``scipy.stats.ttest_rel``), beside
the yardsticks on 2-s and on long inputs; the same per family for joint training.

Outputs: ``benchmarks/results/<name>.json`` and ``.md`` (default name
``real_sequence_whole_file``). Usage: ``python -m benchmarks.studies.whole_file [--runs
runs/real_sequence] [--strategies ...] [--seeds 0,1,2,3,4] [--collect]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks import _real_sets as rs
from benchmarks._common import REPO
from benchmarks.studies.real_sequence import STRATEGIES
from cl_spoof.config import override_config, to_dict
from cl_spoof.infra.files import atomic_write_text
from cl_spoof.rundir import CompareDir, RunDir

_mean = rs.mean_of_systems  # the mean over systems every study shares
MODULE = "benchmarks.studies.whole_file"
TITLE = "Whole utterances against 2-s starts on the real sequence"
WHOLE = "whole_file"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "real_sequence",
                    help="the runs folder of a real_sequence study")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--long-samples", type=int, default=128000,
                    help="input of the long yardsticks, in samples (default 8 s at 16 kHz)")
    ap.add_argument("--name", default="real_sequence_whole_file", help="results name")
    ap.add_argument("--collect", action="store_true",
                    help="score and fit nothing: tables of what is there")
    return ap


def whole_file_path(runs: Path, strategy: str, seed: int) -> Path:
    """Where the whole-file scores of one run go."""
    return runs / WHOLE / strategy.replace("+", "_") / f"seed{seed}.txt"


def score_whole_files(run: RunDir, out: Path, test: pd.DataFrame, batch_size: int) -> None:
    """The run's last checkpoint on every utterance of ``test`` (the study's test rows),
    whole (an ASVspoof 2019 score file: ``utt_id attack key score``), written atomically."""
    import torch

    from cl_spoof.workflows.score import load_committed, window_means

    last = max(run.stages_present())
    torch.set_num_threads(1)
    ckpt = load_committed(run.checkpoint_path(last), "cpu")
    win = ckpt.num_samples
    means, _, _, problems = window_means(ckpt, [Path(p) for p in test["path"]], win,
                                         max(1, win // 2), batch_size)
    if problems:
        raise RuntimeError(f"{run.path}: {len(problems)} test file(s) could not be scored")
    lines = [f"{u} {a if lab == 'spoof' else '-'} {lab} {s:.6f}"
             for u, a, lab, s in zip(test["utt_id"], test["attack"], test["label"], means,
                                     strict=True)]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> dict[str, Any] | None:
    """Paired t-test of ``b - a`` over the seeds both have (``scipy.stats.ttest_rel``)."""
    from scipy.stats import ttest_rel

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    res = ttest_rel([y for _, y in pairs], [x for x, _ in pairs])
    p = float(res.pvalue)
    return {"t": float(res.statistic), "p": p if np.isfinite(p) else None, "n": len(pairs)}


def collect(runs: Path, strategies: Sequence[str], seeds: Sequence[int],
            long_samples: int) -> dict[str, Any]:
    """Every number of the tables from what is under ``runs`` (the families from its
    ``data.json``, each with the systems that have a column)."""
    groups = rs.read_groups(runs)
    done = rs.compare_runs(runs / "compare", strategies, seeds, groups)
    data = json.loads((runs / rs.DATA_FILE).read_text()) if (runs / rs.DATA_FILE).is_file() \
        else {}
    first = next((r for finished in done.values() for r in finished), None)
    columns = set(first.attacks) if first is not None else set()
    families: dict[str, list[str]] = {f: [a for a in m if a in columns]
                                      for f, m in (data.get("families") or {}).items()}
    per_strategy: dict[str, Any] = {}
    for name, finished in done.items():
        rows = []
        for r in finished:
            path = whole_file_path(runs, name, r.seed)
            if not path.is_file():
                continue
            whole = rs.matched_eers(path, groups)
            systems = [a for a in r.attacks if a in r.final_matched]
            rows.append((r.seed, _mean(r.final_matched, systems), _mean(whole, systems),
                         {a: whole.get(a) for a in systems}, r.final_matched))
        if not rows:
            continue
        crop, full = [c for _, c, _, _, _ in rows], [w for _, _, w, _, _ in rows]
        per_strategy[name] = {
            "seeds": [s for s, *_ in rows], "start_matched": crop, "whole_matched": full,
            "difference": [None if c is None or w is None else w - c
                           for c, w in zip(crop, full, strict=True)],
            "paired_test": paired(crop, full),
            "per_family_start": {f: [_mean(r[4], m) for r in rows] for f, m in families.items()},
            "per_family_whole": {f: [_mean(r[3], m) for r in rows] for f, m in families.items()},
        }
    yardsticks: dict[str, Any] = {}
    for kind, folder in (("start", runs / "yardstick"),
                         ("long", runs / f"yardstick_{long_samples}")):
        for n, y in (rs.read_yardsticks(folder) or {}).items():
            matched = y.get("matched") or {}
            yardsticks.setdefault(n, {})[kind] = {
                "matched_mean": y.get("matched_mean"),
                "per_family": {f: _mean(matched, m) for f, m in families.items()}}
    return {"families": families, "strategies": per_strategy, "yardsticks": yardsticks,
            "long_samples": long_samples}


def tables(result: dict[str, Any], sample_rate: int) -> list[rs.Table]:
    """The study's two tables."""
    long_s = result["long_samples"] / sample_rate
    head = rs.Table(
        "Final matched EER (%): the first 2 s against the whole utterance",
        ["", "seeds", "2-s start", "whole utterance", "difference (pts)", "paired p"],
        notes="Detectors: the last checkpoint of every run, mean over systems of the matched "
              "EER (each system against the bona fide of its own source), mean ± std over "
              "seeds; whole utterance: the mean score of 2-s windows 1 s apart. Paired: the "
              "same checkpoints both ways (scipy.stats.ttest_rel). Yardsticks: fitted on the "
              f"2-s starts (the run's input) and on the first {long_s:g} s (shorter "
              "utterances repeated).")
    for name, s in result["strategies"].items():
        test = s["paired_test"]
        head.rows.append([name, str(len(s["seeds"])), rs.pm(s["start_matched"]),
                          rs.pm(s["whole_matched"]), rs.pm(s["difference"], signed=True),
                          rs.p_text(test)])
    for name, y in result["yardsticks"].items():
        start, long = y.get("start", {}).get("matched_mean"), y.get("long", {}).get(
            "matched_mean")
        head.rows.append([f"yardstick {name}", "–", rs.pm([start]),
                          rs.pm([long]) + f" ({long_s:g} s)" if long is not None else "–",
                          rs.pm([None if start is None or long is None else long - start],
                                signed=True), "–"])
    families = result["families"]
    fam = rs.Table("Per family (%): 2-s start / whole utterance (yardsticks: 2 s / long)",
                   ["", *families],
                   notes="Mean over the family's systems of the final matched EER, mean over "
                         "seeds.")
    for name, s in result["strategies"].items():
        fam.rows.append([name, *[f"{rs.pm(s['per_family_start'][f])} / "
                                 f"{rs.pm(s['per_family_whole'][f])}" for f in families]])
    for name, y in result["yardsticks"].items():
        fam.rows.append([f"yardstick {name}", *[
            f"{rs.pm([y.get('start', {}).get('per_family', {}).get(f)])} / "
            f"{rs.pm([y.get('long', {}).get('per_family', {}).get(f)])}" for f in families]])
    return [head, fam]


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    runs = args.runs.expanduser().resolve()
    compare = CompareDir(runs / "compare")
    if not compare.is_compare():
        ap.error(f"--runs: {runs} holds no real_sequence comparison (compare/compare.json); "
                 "run python -m benchmarks.studies.real_sequence first")
    cfg = compare.read_config()  # the sources, split and input the runs used
    strategies = rs.parse_list(args.strategies)
    seeds = [int(s) for s in rs.parse_list(args.seeds)]
    if not args.collect:
        from cl_spoof.benchmark.loading import read_run_table

        table, _ = read_run_table(cfg.data)
        test = table[table["split"] == cfg.data.test_split]
        for name in strategies:
            for seed in seeds:
                run = compare.run_dir(name, seed)
                out = whole_file_path(runs, name, seed)
                if run.finished() and not out.is_file():
                    rs.say(f"{name}, seed {seed}: scoring whole utterances")
                    score_whole_files(run, out, test, cfg.train.eval_batch_size)
        folder = runs / f"yardstick_{args.long_samples}"
        if rs.read_yardsticks(folder) is None:
            from cl_spoof.workflows.yardstick import run_yardstick

            rs.say(f"yardsticks on {args.long_samples} samples")
            long_cfg = override_config(cfg, [f"data.num_samples={args.long_samples}"], "--set")
            run_yardstick(long_cfg, rs.YARDSTICKS, folder, on_stage=rs.say)
    result = collect(runs, strategies, seeds, args.long_samples)
    payload = {
        "title": TITLE,
        "description": "The runs and yardsticks of the real sequence (three real sets, "
                       "speaker-disjoint, 16 kHz, 2-s inputs): the final checkpoints scored "
                       "on whole test utterances, the yardsticks refitted on long inputs.",
        "command": rs.command_line(MODULE, argv),
        "runs": str(runs),
        "config": {"resolved": to_dict(cfg), "long_samples": args.long_samples},
        "columns": {"start_matched": "mean over systems of the final matched EER (%) on the "
                                     "first data.num_samples samples (the run's own)",
                    "whole_matched": "the same with every test utterance scored whole",
                    "difference": "whole_matched - start_matched, per seed (points)"},
        **result,
    }
    path = rs.write_results(args.name, payload, tables(result, cfg.data.sample_rate),
                            payload["description"])
    rs.say(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
