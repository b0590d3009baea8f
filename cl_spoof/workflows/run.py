"""One continual run: train experience by experience, evaluate every attack after each.

The data flow, start to end::

    config ─► benchmark.load_benchmark_data ─► benchmark.datasets.build_benchmark
           ─► Trainer.build (model, strategy, EER metric)
           ─► for each stage: Trainer.train_stage ─► Trainer.evaluate ─► record_stage (RunDir)

The run directory's layout is described in :mod:`cl_spoof.rundir.run_dir`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import torch
from avalanche.core import SupervisedPlugin

from cl_spoof.benchmark import (
    BenchmarkData,
    joint_plan,
    load_benchmark_data,
    load_evaluation_set,
)
from cl_spoof.benchmark.datasets import ClipSpec, build_benchmark, build_test_stream
from cl_spoof.config import RunConfig, with_absolute_paths
from cl_spoof.errors import CLSpoofError, FileSystemError, os_error_message
from cl_spoof.infra.context import RunContext
from cl_spoof.infra.testhook import pause_point
from cl_spoof.infra.transaction import Transaction
from cl_spoof.labels import JOINT, PRETRAINED, PRETRAINED_PREFIX
from cl_spoof.metrics.official import stage_metrics
from cl_spoof.models import build_detector
from cl_spoof.models.pretrained import load_initial_weights
from cl_spoof.rundir import STAGE_BASE, RunDir, RunProgress, check_same_config
from cl_spoof.strategies.registry import StrategySpec, get_spec
from cl_spoof.workflows.events import RunEvents, RunSummary
from cl_spoof.workflows.loggers import run_loggers
from cl_spoof.workflows.official_inputs import check_score_ids, official_inputs
from cl_spoof.workflows.setup import resolve
from cl_spoof.workflows.trainer import StageResult, Trainer, preflight


def default_run_dir(cfg: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<time>-<strategy>-seed<N>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{cfg.strategy.name.replace('+', '_')}-seed{cfg.seed}"


@dataclass(frozen=True)
class StageRecord:
    """One trained (or, stage 0, pretrained) and evaluated stage, as the run directory
    records it."""

    stage: int  # 1..N: a trained stage; 0: the pretrained starting model
    trained_on: str  # the attack learned (or ``joint``; ``pretrained`` for stage 0)
    attacks: Sequence[str]  # every attack of the run, in the matrix's order
    result: StageResult
    official: dict[str, Any]  # the stage's official metrics
    last: bool  # the run's final stage: the run is finished once it is recorded
    # EER (%) per ``pretrained:<attack>`` column (data.pretrained_eval), after the attacks
    pretrained: dict[str, float] = field(default_factory=dict)
    families: Mapping[str, Sequence[str]] | None = None  # stage label -> attacks it learns


def record_stage(run_dir: RunDir, trainer: Trainer, progress: RunProgress,
                 record: StageRecord, t0: float) -> tuple[RunProgress, pd.DataFrame, dict]:
    """``progress`` with ``record``'s stage added; rank 0 writes its scores, checkpoint,
    matrix and metrics. Every process returns the same progress, matrix and metrics
    (``t0``: when the command started, for the run's time in ``run.json``)."""
    row = {"stage": record.stage, "trained_on": record.trained_on,
           **{a: record.result.eers.get(a, float("nan")) for a in record.attacks},
           **record.pretrained}
    progress = progress.with_stage(row, {"trained_on": record.trained_on, **record.official})
    if not trainer.ctx.is_main:
        matrix, metrics = run_dir.frames(progress, record.attacks, record.families)
        return progress, matrix, metrics
    checkpoint = trainer.checkpoint(record.stage, record.trained_on, record.attacks,
                                    record.result)
    with run_dir.writing():  # readers see the stage once run.json records it, not before
        run_dir.write_stage_outputs(record.stage, record.result.scores, checkpoint)
        matrix, metrics = run_dir.write_stage(progress, record.attacks, record.last,
                                              time.perf_counter() - t0, record.families)
    return progress, matrix, metrics


def pretrained_eers(trainer: Trainer, stream: Sequence[Any] | None) -> dict[str, float]:
    """The EER (%) of every attack of ``data.pretrained_eval``'s stream, as the columns
    ``pretrained:<attack>`` (none without it)."""
    if stream is None:
        return {}
    return {PRETRAINED_PREFIX + a: eer for a, eer in trainer.evaluate(stream).eers.items()}


def load_pretrained_eval(cfg: RunConfig, ctx: RunContext, events: RunEvents
                         ) -> Sequence[Any] | None:
    """The test stream of ``data.pretrained_eval`` (None when the config has none)."""
    path = cfg.data.pretrained_eval
    if path is None:
        return None
    data = ctx.local_main_first(lambda: load_evaluation_set(
        path, cfg.data, cfg.seed, events.on_stage, events.on_progress))
    return build_test_stream(data.table, data.waveforms, data.plans, ClipSpec.from_config(cfg))


@contextlib.contextmanager
def _run_directory(run_dir: RunDir, ctx: RunContext, resume: bool, wait: bool
                   ) -> Iterator[Transaction | None]:
    """Rank 0: owns the run directory (refused, or waiting with ``wait``, while another
    command owns it; every rank learns of a refusal) and changes it all or nothing until a
    stage completes (then kept, for ``--resume``). An OS error without a file name (a log
    write) names the run directory."""
    out_dir = run_dir.path
    with contextlib.ExitStack() as stack:
        owned: list[Transaction] = []

        def own() -> None:
            owned.append(stack.enter_context(run_dir.change(
                "run --resume" if resume else "run", wait)))

        ctx.on_main(own)
        try:
            yield owned[0] if owned else None
        except OSError as exc:
            if exc.filename is None:
                raise FileSystemError(f"cannot write {os_error_message(exc, out_dir)}") from exc
            raise


def _stage_families(data: BenchmarkData, joint: bool) -> dict[str, tuple[str, ...]] | None:
    """The attacks each stage label learns, when stages learn families (for the matrix's
    metrics): the data's families, or for joint training the learned families' attacks
    when some columns are held out (None when joint learns every column)."""
    if data.families is None:
        return None
    if not joint:
        return data.families
    learned = tuple(a for members in data.families.values() for a in members)
    return None if len(learned) == len(data.plans) else {JOINT: learned}


def _members_text(attacks: Sequence[str], shown: int = 6) -> str:
    """`` (a, b, c)`` for a stage's progress line; a long family shortened with its count."""
    if len(attacks) <= shown:
        return f" ({', '.join(attacks)})"
    return f" ({', '.join(attacks[:shown - 1])}, ... {len(attacks)} attacks)"


@dataclass(frozen=True)
class RunJob:
    """What :func:`run_experiment` was asked to do, on which process."""

    cfg: RunConfig
    run_dir: RunDir
    spec: StrategySpec
    events: RunEvents
    ctx: RunContext
    data: BenchmarkData | None = None  # benchmark data already loaded (compare)
    extra_plugins: tuple[SupervisedPlugin, ...] = ()
    resume: bool = False
    only_stage_0: bool = False  # record the pretrained model (stage 0) and finish


def run_experiment(cfg: RunConfig, out_dir: Path, events: RunEvents | None = None,
                   data: BenchmarkData | None = None,
                   extra_plugins: Sequence[SupervisedPlugin] = (),
                   resume: bool = False, ctx: RunContext | None = None,
                   only_stage_0: bool = False, label: str | None = None,
                   wait: bool = False) -> RunSummary:
    """Train ``cfg.strategy`` over the benchmark of ``cfg.data`` and write ``out_dir``.

    With ``model.init`` the run starts from that pretrained model: before any training
    it is evaluated on every attack (and on ``data.pretrained_eval``) and recorded as
    stage 0, with its scores and checkpoint; trained stages are 1..N. With
    ``only_stage_0`` (``cl-spoof init``) the run records stage 0 and finishes, a run
    that ``add-attack`` continues.

    ``data`` reuses already loaded benchmark data (compare loads it once);
    ``extra_plugins`` are added to the strategy (e.g. timers in benchmarks/).
    With ``resume`` the run continues after the last completed stage of
    ``out_dir`` (model, optimizer and strategy state from its last checkpoint;
    every stage reseeds, so the result equals an uninterrupted run's); ``cfg`` must
    be the config the run was started with.

    All or nothing until a stage completes: a run that fails (or is interrupted)
    before completing a stage leaves ``out_dir`` as it was before the call (removed
    when the call created it). Completed stages are kept for ``--resume``. The run
    directory has one owner: while another command owns it the call is refused, or,
    with ``wait``, waits for it. ``run.json`` records what data the run starts on; a
    resume on other data is refused.

    ``ctx`` says which process this is (default: one local process on
    ``train.device``). Under torchrun every process calls this with the same
    arguments and its own context; training is data-parallel, only rank 0 writes
    ``out_dir`` and reports ``events``, and every process returns the same matrix
    and metrics.

    ``label`` is what reports call the run (default: the strategy with the
    hyper-parameters that differ from its defaults); a resumed run keeps its own.
    """
    # A new run stores where its data is (absolute), wherever it is continued from; a
    # resumed run keeps its config as it was started.
    cfg = resolve(cfg if resume else with_absolute_paths(cfg))
    ctx = ctx or RunContext.local(cfg.train.device)
    events = events if (events is not None and ctx.is_main) else RunEvents()
    t0 = time.perf_counter()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ctx.batch_share(cfg.train.batch_size)  # a bad batch size fails before data loading
    if only_stage_0 and cfg.model.init is None:
        raise CLSpoofError("a run of stage 0 alone needs a pretrained model (model.init)")
    if cfg.model.init is not None and not resume:  # a file that does not fit: before the data
        load_initial_weights(build_detector(cfg.model, cfg.data.sample_rate), cfg.model.init,
                             cfg.model.preset)
    job = RunJob(cfg=cfg, run_dir=RunDir(out_dir, cfg, label), spec=get_spec(cfg.strategy.name),
                 events=events, ctx=ctx, data=data, extra_plugins=tuple(extra_plugins),
                 resume=resume, only_stage_0=only_stage_0)
    if ctx.is_main and not resume:
        job.run_dir.check_new()  # before the transaction: never touch someone else's folder
    if data is None:  # a comparison checks its strategies before it loads the data
        preflight(cfg)  # a bad model or strategy setting fails before any audio is read
    with _run_directory(job.run_dir, ctx, resume, wait) as tx:
        return _run(job, tx, t0)


def _run(job: RunJob, tx: Transaction | None, t0: float) -> RunSummary:
    """Open (or create) the run directory, record stage 0 for a run from a pretrained
    model, train every remaining stage, record each."""
    cfg, run_dir, events, ctx = job.cfg, job.run_dir, job.events, job.ctx
    progress: RunProgress = ctx.on_main(_open_existing(run_dir) if job.resume else run_dir.create)
    completed = progress.completed

    data = job.data
    if data is None:
        data = ctx.local_main_first(lambda: load_benchmark_data(
            cfg.data, seed=cfg.seed, on_stage=events.on_stage, progress=events.on_progress))
    check_score_ids(data, cfg.metrics.score_format)
    if ctx.is_main:
        run_dir.record_data(data.table)  # run.json: the digest of the utterances used
    record = data.record  # every row and decoded clip: what --resume checks
    ctx.on_main(lambda: run_dir.check_data(record()) if job.resume
                else run_dir.record_start_data(record()))
    inputs = official_inputs(cfg, data)  # reads and checks the ASV file before training
    attacks = [p.attack for p in data.plans]
    stages = data.training_plans  # one per attack, or per family (experience_by: family)
    train_plans = [joint_plan(stages)] if job.spec.joint else stages
    families = _stage_families(data, job.spec.joint)
    bm = build_benchmark(data.table, data.waveforms, data.plans, ClipSpec.from_config(cfg),
                         train_plans=train_plans)
    pretrained_stream = load_pretrained_eval(cfg, ctx, events)

    # a resumed run logs into a folder of its own
    resumed_at = (progress.last_stage or 0) if job.resume else None
    log_file: IO[str] | None = run_dir.open_log(resumed_at) if ctx.is_main else None
    try:
        loggers = run_loggers(cfg, run_dir, log_file, resumed_at) if log_file else []
        trainer = Trainer.build(cfg, ctx, events, loggers, job.extra_plugins)
        last = progress.last_stage
        if last is not None:
            checkpoint = run_dir.checkpoint_path(last)

            def read_own_checkpoint() -> dict:
                ckpt = run_dir.read_checkpoint(last)
                check_same_config(ckpt.get("config"), cfg, str(checkpoint))
                return ckpt

            trainer.restore(ctx.on_main(read_own_checkpoint), checkpoint, completed,
                            bm.train_stream)
            events.on_stage(f"resuming after stage {last}/{len(train_plans)}")
        reported: dict[int, int] = {}
        matrix, metrics = pd.DataFrame(), dict[str, Any]()

        def evaluate_and_record(stage: int, trained_on: str, is_last: bool) -> None:
            nonlocal progress, matrix, metrics
            result = trainer.evaluate(bm.test_stream)
            calibration = (trainer.evaluate(bm.calibration_stream).scores
                           if cfg.data.calibration_split is not None else None)
            record = StageRecord(stage=stage, trained_on=trained_on, attacks=attacks,
                                 result=result, official=stage_metrics(result.scores, inputs,
                                                                       stage, calibration),
                                 last=is_last,
                                 pretrained=pretrained_eers(trainer, pretrained_stream),
                                 families=families)
            progress, matrix, metrics = record_stage(run_dir, trainer, progress, record, t0)
            if tx is not None:
                tx.keep()  # a completed stage stays, whatever happens next
            row = progress.rows[-1]
            events.on_result(stage, trained_on, {a: row[a] for a in row
                                                 if a not in ("stage", "trained_on")})

        if cfg.model.init is not None and last is None:
            kind = trainer.start_from(cfg.model.init)
            events.on_stage(f"stage 0: the pretrained model ({kind} {cfg.model.init}) before "
                            "any training")
            evaluate_and_record(0, PRETRAINED, job.only_stage_0)
        for stage, exp in enumerate([] if job.only_stage_0 else bm.train_stream,
                                    start=STAGE_BASE):
            if stage <= completed:
                continue
            members = _members_text(families[exp.attack]) if families else ""
            events.on_stage(f"stage {stage}/{len(train_plans)}: learning {exp.attack}{members}")
            pause_point("run:stage")
            trainer.train_stage(exp, stage, bm.train_stream)
            evaluate_and_record(stage, exp.attack, stage == len(train_plans))
            for key, messages in trainer.plugin_warnings().items():
                for message in messages[reported.get(key, 0):]:  # e.g. DFWF: "no bona fide"
                    events.on_stage(f"warning: {message}")
                    if log_file is not None:
                        log_file.write(f"WARNING: {message}\n")
                reported[key] = len(messages)
    finally:
        if log_file is not None:
            try:
                log_file.close()
            except OSError:  # the disk filled up: say so, unless an error is on its way
                if sys.exc_info()[0] is None:
                    raise
    return RunSummary(out_dir=run_dir.path, matrix=matrix, metrics=metrics,
                      seconds=time.perf_counter() - t0)


def _open_existing(run_dir: RunDir) -> Callable[[], RunProgress]:
    """Rank 0 resuming: the stages the run completed, once its folders are known to be
    writable (before any data is read or trained on)."""
    def open_existing() -> RunProgress:
        progress = run_dir.open_existing()
        run_dir.check_writable()
        return progress

    return open_existing
