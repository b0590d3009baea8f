"""Add a new attack to a trained detector: one more experience on an existing run.

A deployed detector meets a new synthesizer; the user collects some of its audio
and updates the detector without the old training data (DFWF needs none) and
without retraining from scratch. :func:`add_attack`:

1. checks everything first (run directory, name, the new audio) so that a failing
   command changes nothing in the run directory;
2. splits the new audio into train/eval (speaker-disjoint where speakers are known);
3. takes bona fide from ``bonafide`` or, without it, from the run's own data;
4. restores the last checkpoint (model, optimizer, strategy state), evaluates the
   earlier checkpoints on the new attack (so its column is filled for old stages),
   trains one more experience and evaluates every attack;
5. appends the stage to ``eer_matrix.csv`` / ``metrics.json``, writes its scores and
   checkpoint, records the new attack's utterances in ``added/<NAME>.csv`` (absolute
   paths, so a later add-attack from any folder sees the same data) and refreshes
   ``report/``.

Step 5 runs inside :func:`~cl_spoof.infra.transaction.all_or_nothing`: if anything
fails or is interrupted, the run directory is put back as it was. The name is
checked (:func:`~cl_spoof.infra.names.check_name`) before anything is read or written.

It trains through the same :class:`~cl_spoof.workflows.training.Trainer` as
``run`` (same stage seed, same device choice).
"""

from __future__ import annotations

import io
import json
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from avalanche.logging import TextLogger

from cl_spoof.benchmark import configured_attacks, prepare_benchmark_data, read_run_table
from cl_spoof.benchmark.datasets import ClipSpec, build_benchmark
from cl_spoof.config import RunConfig, with_overrides
from cl_spoof.data.audio import list_audio_files
from cl_spoof.data.checks import audio_problem
from cl_spoof.data.manifest import id_from_text, read_manifest
from cl_spoof.data.table import BONAFIDE, NO_ATTACK, SPOOF, make_table
from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.infra.checkpoints import read_checkpoint
from cl_spoof.infra.context import RunContext
from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.infra.formats import write_csv
from cl_spoof.infra.names import check_name, inside
from cl_spoof.infra.transaction import all_or_nothing, recover
from cl_spoof.metrics.official import OfficialInputs, stage_metrics
from cl_spoof.reporting import build_report
from cl_spoof.strategies.registry import STRATEGIES, get_spec
from cl_spoof.workflows.events import RunEvents, RunSummary
from cl_spoof.workflows.run import record_stage
from cl_spoof.workflows.run_dir import RunWriter, check_same_config, read_status
from cl_spoof.workflows.setup import load_run_config, resolve
from cl_spoof.workflows.training import Trainer

MIN_FILES = 6  # fewer new files than this cannot give a train and an eval part


def _collect(path: Path, label: str, name: str, split_names: tuple[str, str],
             eval_fraction: float, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Rows for the audio under ``path`` (folder or manifest), split train/eval.

    Unreadable files are skipped and returned as problem lines. Paths are absolute.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        files = [str(p) for p in list_audio_files(path)]
        speakers = [""] * len(files)
    elif path.is_file():
        m = read_manifest(path)
        files, speakers = m["path"].tolist(), m["speaker"].tolist()
    else:
        raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(f"{path}: no audio files found")
    problems, good = [], []
    for f, spk in zip(files, speakers, strict=True):
        issue = audio_problem(f)
        if issue is None:
            good.append((f, spk))
        else:
            problems.append(f"{f}: {issue}")
    if len(good) < MIN_FILES:
        raise DataError(f"{path}: {len(good)} usable audio file(s); at least {MIN_FILES} are "
                        "needed to train on and evaluate a new attack"
                        + (f" ({len(problems)} unreadable)" if problems else ""))
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{label}".encode())])
    known = sorted({s for _, s in good if s})
    if len(known) >= 2 and all(s for _, s in good):
        order = np.array(known)
        rng.shuffle(order)
        n_eval = min(len(order) - 1, max(1, round(eval_fraction * len(order))))
        eval_speakers = set(order[:n_eval])
        is_eval = [s in eval_speakers for _, s in good]
    else:
        idx = rng.permutation(len(good))
        n_eval = min(len(good) - 1, max(1, round(eval_fraction * len(good))))
        eval_idx = set(idx[:n_eval].tolist())
        is_eval = [i in eval_idx for i in range(len(good))]
    rows = [{"utt_id": f"{name}/{label}/{id_from_text(Path(f).stem)}_{i}", "path": f,
             "label": label,
             "attack": name if label == SPOOF else NO_ATTACK, "speaker": spk,
             "split": split_names[1] if ev else split_names[0]}
            for i, ((f, spk), ev) in enumerate(zip(good, is_eval, strict=True))]
    return make_table(rows), problems


def added_entries(run_dir: Path) -> list[dict]:
    """What earlier ``add-attack`` commands recorded in ``added/added.json`` (oldest first)."""
    index = run_dir / "added" / "added.json"
    if not index.is_file():
        return []
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))["attacks"]
        for entry in entries:
            check_name(entry["name"], f"{index}: attack name")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CLSpoofError(f"{index}: damaged ({type(exc).__name__}: {exc})") from None
    return list(entries)


def added_rows(run_dir: Path) -> pd.DataFrame | None:
    """Utterances of attacks added to the run so far (``added/*.csv``), or None."""
    names = added_entries(run_dir)
    if not names:
        return None
    frames = []
    for n in names:
        path = inside(run_dir, "added", f"{n['name']}.csv")
        try:
            frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
        except (OSError, ValueError) as exc:
            raise CLSpoofError(f"{path}: unreadable ({type(exc).__name__}); the attacks "
                               "added earlier cannot be re-evaluated") from None
    return pd.concat(frames, ignore_index=True)


def add_attack(run_dir: Path, name: str, spoof: Path, bonafide: Path | None = None,
               eval_fraction: float = 0.3, strategy: str = "dfwf",
               events: RunEvents | None = None,
               report: bool = True) -> tuple[RunSummary, list[str]]:
    """Train one more experience on ``run_dir`` for attack ``name``; returns the summary
    and the problems of skipped input files. With ``report`` it also refreshes
    ``run_dir/report/``. All or nothing: on any failure the run directory is left as
    it was."""
    events = events or RunEvents()
    t0 = time.perf_counter()
    check_name(name)
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (run_dir / "config.yaml").is_file():
        raise CLSpoofError(f"{run_dir}: not a run directory (no config.yaml)")
    recover(run_dir)  # an earlier command killed half-way: put the directory back first
    base_cfg = load_run_config(run_dir / "config.yaml")
    status = read_status(run_dir) or {}
    if not status.get("finished"):
        raise CLSpoofError(f"{run_dir}: the run has not finished; resume it first "
                           f"(cl-spoof run --resume {run_dir})")
    if status.get("config") is not None:  # config.yaml must still say what the run used
        check_same_config(status["config"], base_cfg, str(run_dir / "config.yaml"))
    if not 0 < eval_fraction < 1:
        raise CLSpoofError("--eval-fraction must be between 0 and 1")
    if base_cfg.data.sources:
        raise CLSpoofError(f"{run_dir}: the run reads data.sources; add-attack adds an attack "
                           "to runs of one data.source only (add the new data as another "
                           "source and start a new run)")
    try:
        matrix = pd.read_csv(run_dir / "eer_matrix.csv")
    except (OSError, ValueError) as exc:
        raise CLSpoofError(f"{run_dir / 'eer_matrix.csv'}: unreadable "
                           f"({type(exc).__name__})") from None
    old_attacks = [c for c in matrix.columns if c not in ("stage", "trained_on")]
    if name.lower() in {a.lower() for a in old_attacks}:  # one file per name on any disk
        raise CLSpoofError(f"attack name {name!r} is already in the run "
                           f"({', '.join(old_attacks)})")
    cfg: RunConfig = resolve(with_overrides(base_cfg, strategy={"name": strategy}))
    spec = get_spec(strategy)
    portable = [n for n, s in STRATEGIES.items() if not (s.needs_own_run or s.joint)]
    if spec.joint:
        raise CLSpoofError(f"{strategy} trains once on every attack and cannot add one; "
                           f"use one of: {', '.join(portable)}")
    entries = added_entries(run_dir)
    last = entries[-1]["strategy"] if entries else base_cfg.strategy.name  # of the last stage
    if spec.needs_own_run and last != strategy:
        raise CLSpoofError(f"{strategy} needs the state of a {strategy} run (importances or "
                           f"memories); the run's last stage was trained with {last!r}: "
                           f"use one of: {', '.join(portable)}")
    splits = (cfg.data.train_split, cfg.data.test_split)
    new_spoof, problems = _collect(spoof, SPOOF, name, splits, eval_fraction, cfg.seed)

    try:
        events.on_stage("reading the run's own data")
        table, source = read_run_table(cfg.data, events.on_progress)
        have_run_data = True
    except (CLSpoofError, OSError) as exc:
        if bonafide is None:
            raise CLSpoofError(
                f"the run's own data is not available ({exc}); give bona fide audio with "
                "--bonafide PATH (a folder or manifest) to add an attack without it") from None
        table, source, have_run_data = make_table([]), Path(cfg.data.source), False
    if bonafide is not None:
        new_bona, bona_problems = _collect(bonafide, BONAFIDE, name, splits, eval_fraction,
                                           cfg.seed)
        problems += bona_problems
        if have_run_data:  # the new bona fide replaces the run's own for this stage
            table = table[table["label"] != BONAFIDE]
    else:
        new_bona = make_table([])
    earlier = added_rows(run_dir)
    parts = [table] + ([earlier] if earlier is not None else []) + [new_spoof, new_bona]
    full = make_table(pd.concat(parts, ignore_index=True))
    if have_run_data:
        attacks = [*configured_attacks(table, cfg.data), *[
            a for a in (earlier["attack"].unique() if earlier is not None else [])
            if a != NO_ATTACK], name]
    else:
        attacks = [name]
    data = prepare_benchmark_data(full, attacks, cfg.data, cfg.seed, str(source),
                                  events.on_stage, events.on_progress)
    bm = build_benchmark(data.table, data.waveforms, data.plans, ClipSpec.from_config(cfg))
    new_exp = bm.train_stream[len(attacks) - 1]

    # ---- compute everything, then write (a failure above leaves the run untouched)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ctx = RunContext.local(cfg.train.device)
    completed = len(matrix)
    log_buffer = io.StringIO()  # written to logs/added_<NAME>/ only if everything succeeds
    trainer = Trainer.build(cfg, ctx, events, [TextLogger(log_buffer)])
    writer = RunWriter(run_dir, base_cfg)
    events.on_stage(f"evaluating the {completed} earlier stage(s) on {name}")
    new_test = [bm.test_stream[len(attacks) - 1]]
    old_new_col = []
    for k in range(completed):
        path = writer.checkpoint_path(k)
        trainer.load_model(read_checkpoint(path), path)
        old_new_col.append(trainer.evaluate(new_test).eers[name])
    last = writer.checkpoint_path(completed - 1)
    trainer.restore(read_checkpoint(last), last, completed, bm.train_stream)
    events.on_stage(f"stage {completed + 1}: learning {name} with {strategy}")
    trainer.train_stage(new_exp, completed, bm.train_stream)
    result = trainer.evaluate(bm.test_stream)

    # ---- write, all or nothing
    rows = matrix.to_dict("records")
    for row, eer in zip(rows, old_new_col, strict=True):
        row[name] = eer
    learned = [str(r["trained_on"]) for r in rows] + [name]
    with all_or_nothing(run_dir):
        # Without the run's own data only the new attack is evaluated (old columns: NaN).
        # Official metrics of the new stage: pooled EER and minDCF (no calibration data here).
        official = writer.read_official(completed)
        out_matrix, metrics = record_stage(
            writer, trainer, result, completed, name, old_attacks + [name], rows, learned,
            True, t0, official, stage_metrics(result.scores, OfficialInputs(), completed))
        atomic_write_text(inside(run_dir, "logs", f"added_{name}", "log.txt"),
                          log_buffer.getvalue())
        with atomic_path(inside(run_dir, "added", f"{name}.csv")) as tmp:
            write_csv(pd.concat([new_spoof, new_bona], ignore_index=True), tmp)
        index = run_dir / "added" / "added.json"
        entries.append({"name": name, "stage": completed, "strategy": strategy,
                        "spoof": str(Path(spoof).expanduser().absolute()),
                        "bonafide": str(Path(bonafide).expanduser().absolute())
                        if bonafide else None,
                        "skipped_files": problems})
        atomic_write_text(index, json.dumps({"attacks": entries}, indent=2) + "\n")
        if report:
            events.on_stage("refreshing the report")
            build_report([run_dir], run_dir / "report")
    events.on_result(completed, name, {a: out_matrix.iloc[-1][a] for a in out_matrix.columns
                                       if a != "trained_on"})
    return RunSummary(out_dir=run_dir, matrix=out_matrix, metrics=metrics,
                      seconds=time.perf_counter() - t0), problems
