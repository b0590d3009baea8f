"""Recipe screening on every real set, each on its own splits: joint training and the
yardsticks, for the default recipe and any variants of ``benchmarks/index.yaml``.

For each real set (``vocoders_tts``: ``configs/real_vocoders.yaml`` on its manifest, 24 kHz;
``yourtts`` and ``vctk_vc``: the same recipe on their manifest at their own 16 kHz, 2-s
clips, every system with training and test rows, one experience each) and each variant
(``default``, or an entry of the index, whose changes are applied to every set's
config), this runs, resumably:

1. the yardsticks (LFCC and LTAS statistics, full band and 0-4 kHz) on the set's own
   train / eval split (``cl-spoof yardstick``);
2. joint training for every seed (``cl-spoof compare --strategies joint``, ``--jobs`` at
   a time);
3. the tables: per set and variant, the detector's mean EER over the systems (mean ±
   std over seeds), pooled and (``vocoders_tts``, whose sub-corpora differ in level and
   duration) matched, against the LTAS and LFCC yardsticks; and per system.

A set whose manifest is missing is skipped (the results say so and how to rebuild it).
``--set KEY=VALUE`` changes every config further. ``--collect`` trains nothing.

Outputs: the runs under ``--out`` (default ``runs/real_sets_screen``,
``<variant>/<set>/``), ``benchmarks/results/<name>.json`` and ``.md``.
Usage: ``python -m benchmarks.studies.real_sets_screen [--variants default,lvlnone,noaug]
[--sets vocoders_tts,yourtts,vctk_vc] [--seeds 0,1,2] [--jobs 2] [--collect]``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks import _real_sets as rs
from benchmarks._common import REPO
from benchmarks.index import apply_changes, entry
from cl_spoof.config import RunConfig, override_config, to_dict, with_overrides
from cl_spoof.workflows.setup import load_run_config, resolve

MODULE = "benchmarks.studies.real_sets_screen"
BASE = REPO / "configs" / "real_vocoders.yaml"
TITLE = "The recipe on every real set, each on its own splits: joint training against the " \
        "yardsticks"
DEFAULT = "default"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    rs.add_set_options(ap)
    ap.add_argument("--sets", default=",".join(rs.SETS))
    ap.add_argument("--variants", "--ablation", dest="variants", default=DEFAULT,
                    help="comma-separated: 'default' (configs/real_vocoders.yaml as it is) and "
                         "entries of benchmarks/index.yaml whose base it is")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (compare --jobs)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="change a config key of every set (repeatable)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "real_sets_screen",
                    help="runs folder (<variant>/<set>/ inside; default: runs/real_sets_screen)")
    ap.add_argument("--name", default=None, help="results name (default: real_sets_screen, "
                                                 "with variants: real_sets_screen_<variants>)")
    ap.add_argument("--collect", action="store_true",
                    help="train nothing: tables of the runs finished so far")
    return ap


def tested_attacks(manifest: Path, train_split: str, test_split: str) -> list[str]:
    """The systems of a manifest with spoofs in both splits, sorted (one without test rows
    cannot be measured on its own splits, one without training rows cannot be learned)."""
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    spoof = table[table["label"] == "spoof"]
    both = set(spoof.loc[spoof["split"] == train_split, "attack"]) & set(
        spoof.loc[spoof["split"] == test_split, "attack"])
    return sorted(both)


def set_config(name: str, manifest: Path, variant: str, overrides: Sequence[str]) -> RunConfig:
    """The recipe of ``configs/real_vocoders.yaml`` on one set, with a variant's changes."""
    base = load_run_config(BASE)
    if name != "vocoders_tts":  # the built sets: their own rate, every measurable system
        d = base.data
        base = with_overrides(base, data={
            "source": str(manifest), "sample_rate": 16_000, "num_samples": 32_000,
            "attacks": tested_attacks(manifest, d.train_split, d.test_split)},
            metrics={"matched_by": None})
    else:
        base = with_overrides(base, data={"source": str(manifest)})
    if variant != DEFAULT:
        e = entry(variant)
        if Path(e.base).name != BASE.name:
            raise KeyError(f"index entry {variant!r} starts from {e.base}, not "
                           f"configs/{BASE.name}")
        base = apply_changes(base, e.set)
    return resolve(override_config(base, overrides, "--set"))


def collect_set(out: Path, seeds: Sequence[int]) -> dict[str, Any]:
    """The joint runs and yardsticks finished under one set's folder."""
    groups = rs.read_groups(out)
    runs = rs.compare_runs(out / "compare", ["joint"], seeds, groups).get("joint", [])
    ys = rs.read_yardsticks(out / "yardstick") or {}
    attacks = runs[0].attacks if runs else list(next(iter(ys.values()), {})
                                                .get("per_attack", {}))
    return {
        "attacks": attacks,
        "seeds": [r.seed for r in runs],
        "mean": [r.metrics.get("final_avg_eer") for r in runs],
        "pooled": [r.metrics.get("final_pooled_eer") for r in runs],
        "matched": ([rs.mean_std(list(r.final_matched.values()))["mean"] for r in runs]
                    if groups else []),
        "per_system": {a: [r.final.get(a) for r in runs] for a in attacks},
        "yardsticks": {n: {k: y.get(k) for k in ("what", "mean", "pooled", "matched_mean",
                                                 "per_attack")} for n, y in ys.items()},
        "runs": [r.to_json() for r in runs],
    }


def run_set(cfg: RunConfig, out: Path, seeds: Sequence[int], jobs: int) -> None:
    """Yardsticks and joint runs of one set (a finished part is never redone)."""
    from cl_spoof.benchmark.loading import read_run_table
    from cl_spoof.data.table import utterance_groups
    from cl_spoof.workflows.compare import run_compare
    from cl_spoof.workflows.yardstick import run_yardstick

    if cfg.metrics.matched_by and not (out / rs.GROUPS_FILE).is_file():
        table, _ = read_run_table(cfg.data)
        rs.write_groups(out, table["utt_id"], utterance_groups(table, cfg.metrics.matched_by))
    if rs.read_yardsticks(out / "yardstick") is None:
        run_yardstick(cfg, rs.YARDSTICKS, out / "yardstick", on_stage=rs.say)
    compare = out / "compare"
    run_compare(cfg, ["joint"], seeds, compare, rs.events(),
                resume=(compare / "compare.json").is_file(), jobs=jobs)


def tables(result: dict[str, Any]) -> list[rs.Table]:
    head = rs.Table(
        "Joint training against the yardsticks, each set on its own splits",
        ["set", "variant", "seeds", "detector: mean EER %", "pooled", "matched",
         "LTAS", "LFCC", "LTAS 0-4 kHz", "LFCC 0-4 kHz", "detector − LTAS (pts)"],
        notes="EER in %, final stage of joint training, mean over the set's systems; mean ± "
              "std over seeds (sample std). Matched (vocoders_tts only): each system against "
              "the bona fide of its own sub-corpus. Yardsticks: LTAS / LFCC statistics + "
              "logistic regression on the same clips, full band and band-limited to 0-4 kHz.")
    per: list[rs.Table] = []
    for variant, sets in result["variants"].items():
        for name, r in sets.items():
            if r.get("missing"):
                head.rows.append([name, variant, "–", f"not found: {r['missing']}", *["–"] * 7])
                continue
            ys = r["yardsticks"]

            def y(n: str, key: str = "mean", ys: dict = ys) -> str:
                return rs.pm([ys.get(n, {}).get(key)])

            det = rs.mean_std(r["mean"])["mean"]
            ltas = ys.get("ltas", {}).get("mean")
            gap = "–" if det is None or ltas is None else f"{det - ltas:+.1f}"
            head.rows.append([name, variant, str(len(r["seeds"])), rs.pm(r["mean"]),
                              rs.pm(r["pooled"]), rs.pm(r["matched"]), y("ltas"), y("lfcc"),
                              y("ltas_bl"), y("lfcc_bl"), gap])
            t = rs.Table(f"{name}, {variant}: final EER (%) per system",
                         ["system", "detector", *[f"yardstick {n}" for n in ys]])
            for a in r["attacks"]:
                t.rows.append([a, rs.pm(r["per_system"].get(a, [])),
                               *[rs.pm([ys[n].get("per_attack", {}).get(a)]) for n in ys]])
            per.append(t)
    return [head, *per]


def main(argv: list[str] | None = None) -> None:
    ap = parser()
    args = ap.parse_args(argv)
    paths = rs.set_paths(args)
    names = rs.parse_list(args.sets)
    unknown = [n for n in names if n not in rs.SETS]
    if unknown:
        ap.error(f"--sets: unknown {', '.join(unknown)}; known: {', '.join(rs.SETS)}")
    seeds = [int(s) for s in rs.parse_list(args.seeds)]
    variants = rs.parse_list(args.variants)
    result: dict[str, Any] = {"variants": {}, "configs": {}}
    for variant in variants:
        result["variants"][variant] = {}
        for name in names:
            manifest = paths[name]
            if not manifest.is_file():
                result["variants"][variant][name] = {"missing": str(manifest),
                                                     "rebuild": rs.SETS[name].rebuild}
                continue
            try:
                cfg = set_config(name, manifest, variant, args.overrides)
            except KeyError as exc:
                ap.error(f"--variants: {exc.args[0]}")
            out = args.out / variant / name
            if not args.collect:
                rs.say(f"{variant}: {name}")
                run_set(cfg, out, seeds, args.jobs)
            result["variants"][variant][name] = collect_set(out, seeds)
            result["configs"][f"{variant}/{name}"] = to_dict(cfg)
    payload = {
        "title": TITLE,
        "description": "Each real set trained and tested on its own train / eval split "
                       "(speaker-disjoint within the set): " + "; ".join(
                           f"{n}: {rs.SETS[n].what}" for n in names) + ". Recipe: "
                       "configs/real_vocoders.yaml (the built sets at 16 kHz, 2-s clips), "
                       "variants: " + ", ".join(variants) + ".",
        "command": rs.command_line(MODULE, argv),
        "runs": str(args.out),
        "data": {n: {**rs.manifest_summary(paths[n]), "what": rs.SETS[n].what,
                     "rebuild": rs.SETS[n].rebuild} for n in names},
        "columns": {"mean": "final mean EER (%) over the set's systems, one value per seed",
                    "pooled": "final EER (%) of every test bona fide against every test "
                              "spoof, per seed",
                    "matched": "mean over systems of the EER against the bona fide of the "
                               "system's own sub-corpus (metrics.matched_by), per seed",
                    "yardsticks": "LTAS / LFCC statistics + logistic regression (and their "
                                  "0-4 kHz versions) on the same split"},
        **result,
    }
    name = args.name or "_".join(["real_sets_screen", *[v for v in variants if v != DEFAULT]])
    path = rs.write_results(name, payload, tables(result), payload["description"])
    rs.say(f"wrote {path} and {path.with_suffix('.md')}")


if __name__ == "__main__":
    sys.exit(main())
