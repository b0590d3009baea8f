"""Unseen systems: train on the real sequence minus one family, test that family zero-shot.

For every family of ``configs/real_sequence.yaml`` (or ``--ablation``: an index entry
based on it, e.g. the best recipe), the family is held out (``data.held_out_families``:
tested after every stage, never learned) and, resumably:

1. the yardsticks (LFCC and LTAS statistics, full band and 0-4 kHz) are fitted on the
   other families' training rows and score every system;
2. joint training on the other families, every seed (``cl-spoof compare --strategies
   joint``); ``--jobs`` folds side by side (or, with fewer folds than jobs, seeds);
3. with ``--init PATH`` (a pretrained detector's weights, ``model.init``), the same
   joint training starting from it (skipped, and said so, where this cl-spoof has no
   ``model.init``); ``--init-only`` trains only that one (e.g. ``--ablation
   lofo_aasist_l``: the official AASIST-L, its frozen encoder's features cached once for
   every fold under ``<out>/features`` unless ``train.feature_cache_dir`` is set).

Table: per held-out family, the mean matched EER of its systems (each against the bona
fide of its own source) for the detector (and the pretrained start) and the yardsticks,
whether each is no worse than the better of LTAS and LFCC, and both on the families they
learned.

Outputs: the runs under ``--out`` (default ``runs/leave_one_family_out``, one folder per
held-out family), ``benchmarks/results/<name>.json`` and ``.md``.
Usage: ``python -m benchmarks.studies.leave_one_family_out [--families ...] [--seeds 0,1,2]
[--init PATH [--init-only]] [--jobs 2] [--collect]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _real_sets as rs
from benchmarks._common import REPO
from benchmarks.index import ablation_config, entry
from benchmarks.studies.real_sequence import CONFIG, prepare
from cl_spoof.config import ModelSpec, RunConfig, override_config, to_dict, with_overrides
from cl_spoof.workflows.setup import load_run_config

_mean = rs.mean_of_systems  # the mean over systems every study shares

MODULE = "benchmarks.studies.leave_one_family_out"
TITLE = "Unseen systems: each family of the real sequence held out, tested zero-shot"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--config", type=Path, default=CONFIG)
    which.add_argument("--ablation", metavar="NAME",
                       help="an entry of benchmarks/index.yaml based on "
                            "configs/real_sequence.yaml (the recipe to hold families out of)")
    rs.add_set_options(ap)
    ap.add_argument("--families", default="", help="the families to hold out, one at a time "
                                                  "(default: every one)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2,
                    help="folds side by side (seeds, with fewer folds than jobs)")
    ap.add_argument("--init", type=Path, default=None, metavar="PATH",
                    help="also train from these pretrained weights (model.init)")
    ap.add_argument("--init-only", action="store_true",
                    help="with --init: train only from those weights, not the recipe from "
                         "scratch (a pretrained architecture's own study)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="change a config key (repeatable)")
    ap.add_argument("--out", type=Path, default=None,
                    help="runs folder (default: runs/<results name>)")
    ap.add_argument("--name", default=None, help="results name (default: "
                                                 "leave_one_family_out[_<ablation>])")
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: tables of the runs finished so far")
    return ap


def has_init() -> bool:
    """Whether this cl-spoof's config has ``model.init`` (pretrained starting weights)."""
    return "init" in {f.name for f in dataclasses.fields(ModelSpec)}


def fold_config(cfg: RunConfig, family: str, init: Path | None = None) -> RunConfig:
    """``cfg`` with ``family`` held out (and, with ``init``, starting from those weights)."""
    out = with_overrides(cfg, data={"held_out_families": [family]})
    if init is not None:
        out = override_config(out, [f"model.init={init}"], "--init")
    return out


KINDS = ("detector", "pretrained")


def train_fold(cfg: RunConfig, family: str, seeds: Sequence[int], fold: Path,
               init: Path | None, jobs: int = 1, init_only: bool = False) -> None:
    """One held-out family: its yardsticks, then joint training on the other families for
    every seed (and from ``init``; with ``init_only``, only from it); a finished part is
    never redone."""
    from cl_spoof.workflows.compare import run_compare
    from cl_spoof.workflows.yardstick import run_yardstick

    held = fold_config(cfg, family)
    if rs.read_yardsticks(fold / "yardstick") is None:
        rs.say(f"{family} held out: yardsticks")
        run_yardstick(held, rs.YARDSTICKS, fold / "yardstick", on_stage=rs.say)
    kinds = ([] if init_only and init is not None else [("detector", held)]) + (
        [("pretrained", fold_config(cfg, family, init))] if init is not None else [])
    for kind, run_cfg in kinds:
        rs.say(f"{family} held out: {kind}")
        run_compare(run_cfg, ["joint"], seeds, fold / kind, rs.events(),
                    resume=(fold / kind / "compare.json").is_file(), jobs=jobs)


def train_folds(cfg: RunConfig, families: Sequence[str], seeds: Sequence[int], out: Path,
                init: Path | None, jobs: int, init_only: bool = False) -> None:
    """Every fold. With ``jobs`` > 1 and at least as many folds, the folds go side by side
    (one process each; the seeds of a fold in turn), else the seeds of each fold do. A
    failed fold does not stop the others; the failures are raised together at the end."""
    if jobs <= 1 or len(families) < jobs:
        for family in families:
            train_fold(cfg, family, seeds, out / family, init, jobs, init_only)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    failed: list[str] = []
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(train_fold, cfg, f, seeds, out / f, init, 1, init_only): f
                   for f in families}
        for future in as_completed(futures):
            if future.exception() is not None:
                failed.append(f"{futures[future]}: {future.exception()}")
            else:
                rs.say(f"{futures[future]} held out: done")
    if failed:
        raise RuntimeError("folds failed (run the same command again to redo them):\n  "
                           + "\n  ".join(failed))


def collect_fold(out: Path, family: str, members: Sequence[str], seeds: Sequence[int],
                 groups: dict[str, str]) -> dict[str, Any]:
    """The detector's and the yardsticks' numbers of one held-out family."""
    result: dict[str, Any] = {"systems": list(members)}
    for kind in KINDS:
        runs = rs.compare_runs(out / kind, ["joint"], seeds, groups).get("joint", [])
        if not runs:
            continue
        seen = [a for a in runs[0].attacks if a not in members]
        result[kind] = {
            "seeds": [r.seed for r in runs],
            "held_out_matched": [_mean(r.final_matched, members) for r in runs],
            "held_out_pooled": [_mean(r.final, members) for r in runs],
            "seen_matched": [_mean(r.final_matched, seen) for r in runs],
            "per_system_matched": {a: [r.final_matched.get(a) for r in runs] for a in members},
            "runs": [r.to_json() for r in runs],
        }
    ys = rs.read_yardsticks(out / "yardstick") or {}
    result["yardsticks"] = {n: {"held_out_matched": _mean(y.get("matched") or {}, members),
                                "held_out_pooled": _mean(y.get("per_attack") or {}, members),
                                "per_system_matched": {a: (y.get("matched") or {}).get(a)
                                                       for a in members}}
                            for n, y in ys.items()}
    best = rs.finite([result["yardsticks"].get(n, {}).get("held_out_matched")
                      for n in ("ltas", "lfcc")])
    result["better_yardstick"] = min(best) if best else None
    for kind in KINDS:
        mean = rs.mean_std(result.get(kind, {}).get("held_out_matched", []))["mean"]
        result[f"{kind}_no_worse"] = None if mean is None or not best else mean <= min(best)
    return result


def tables(result: dict[str, Any]) -> list[rs.Table]:
    """One row per held-out family; the columns of a kind of run (the recipe from
    scratch, the pretrained start) only where some fold has it."""
    folds = result["folds"]
    kinds = [k for k in KINDS if any(k in r for r in folds.values())] or ["detector"]
    label = {"detector": "detector (joint on the rest)", "pretrained": "pretrained start"}
    head = rs.Table(
        "Held-out family: mean matched EER (%) of its systems, never trained on",
        ["held-out family", "systems", *[label[k] for k in kinds],
         "LTAS", "LFCC", "LTAS 0-4 kHz", "LFCC 0-4 kHz",
         *[f"{k} ≤ better of LTAS, LFCC" for k in kinds],
         *[f"{k} on the learned families" for k in kinds]],
        notes="Matched EER: each system's spoofs against the bona fide of its own source; "
              "mean over the held-out family's systems; runs: mean ± std over seeds "
              "(sample std). Yardsticks fitted on the same training rows and input as the "
              "runs.")
    verdict = {None: "–", True: "yes", False: "no"}
    for family, r in folds.items():
        ys = r["yardsticks"]
        head.rows.append([family, str(len(r["systems"])),
                          *[rs.pm(r.get(k, {}).get("held_out_matched", [])) for k in kinds],
                          *[rs.pm([ys.get(n, {}).get("held_out_matched")])
                            for n in ("ltas", "lfcc", "ltas_bl", "lfcc_bl")],
                          *[verdict[r.get(f"{k}_no_worse")] for k in kinds],
                          *[rs.pm(r.get(k, {}).get("seen_matched", [])) for k in kinds]])
    return [head]


def _results_name(ablation: str | None) -> str:
    """``leave_one_family_out``, or the results name an index entry lists (else
    ``leave_one_family_out_<entry>``)."""
    if ablation is None:
        return "leave_one_family_out"
    listed = entry(ablation).results_name
    return listed or f"leave_one_family_out_{ablation}"


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    if args.init_only and args.init is None:
        ap.error("--init-only needs --init PATH")
    if args.ablation:
        try:
            cfg = ablation_config(args.ablation)
        except KeyError as exc:
            ap.error(f"--ablation: {exc.args[0]}")
    else:
        cfg = load_run_config(args.config)
    cfg = override_config(rs.with_sources(cfg, rs.set_paths(args)), args.overrides, "--set")
    names = rs.parse_list(args.families) or list(cfg.data.families)
    unknown = [f for f in names if f not in cfg.data.families]
    if unknown:
        ap.error(f"--families: {', '.join(unknown)} not in data.families "
                 f"({', '.join(cfg.data.families)})")
    seeds = [int(s) for s in rs.parse_list(args.seeds)]
    name = args.name or _results_name(args.ablation)
    out = (args.out or REPO / "runs" / name).resolve()
    init_note = None
    if args.init is not None and not has_init():
        init_note = "--init skipped: this cl-spoof has no model.init"
        rs.say(init_note)
    init = args.init.expanduser().resolve() if args.init is not None and has_init() else None
    if cfg.train.feature_cache and cfg.train.feature_cache_dir is None:
        # every fold starts from the same frozen prefix: its features are computed once
        cfg = override_config(cfg, [f"train.feature_cache_dir={out / 'features'}"],
                              "the study")
    if not args.collect:
        prepare(cfg, out)
        train_folds(cfg, names, seeds, out, init, args.jobs, args.init_only)
    data = json.loads((out / rs.DATA_FILE).read_text()) if (out / rs.DATA_FILE).is_file() \
        else {"sources": {s.name: rs.manifest_summary(Path(s.path)) for s in cfg.data.sources}}
    families = data.get("families") or {f: list(p) for f, p in cfg.data.families.items()}
    groups = rs.read_groups(out)
    folds = {f: collect_fold(out / f, f, families.get(f, []), seeds, groups) for f in names}
    result = {"folds": folds, "data": data, "families": families}
    payload = {
        "title": TITLE,
        "description": "The real sequence's sources and speaker-disjoint split "
                       f"({data.get('split', 'see data')}); each family in turn held out "
                       "(data.held_out_families), the rest learned jointly; the held-out "
                       "family's systems are never trained on. "
                       + (init_note or (f"Pretrained start: {init.name}." if init else "")),
        "command": rs.command_line(MODULE, argv),
        "runs": str(out),
        "config": {"base": args.ablation or str(args.config), "overrides": args.overrides,
                   "init": None if init is None else str(init), "resolved": to_dict(cfg)},
        "columns": {"held_out_matched": "mean over the held-out family's systems of the final "
                                        "matched EER (%), one value per seed",
                    "seen_matched": "the same over the learned families' systems",
                    "better_yardstick": "the lower of the LTAS and LFCC yardsticks' "
                                        "held_out_matched",
                    "detector_no_worse": "detector's mean held_out_matched <= "
                                         "better_yardstick",
                    "pretrained_no_worse": "the same for the runs from --init"},
        **result,
    }
    path = rs.write_results(name, payload, tables(result), payload["description"])
    rs.say(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
