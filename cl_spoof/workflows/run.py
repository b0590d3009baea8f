"""One continual run: train experience by experience, evaluate every attack after each.

The data flow, start to end::

    config ─► benchmark.load_benchmark_data ─► benchmark.datasets.build_benchmark
           ─► Trainer.build (model, strategy, EER metric)
           ─► for each stage: Trainer.train_stage ─► Trainer.evaluate ─► RunWriter

The run directory's layout is described in :mod:`cl_spoof.workflows.run_dir`.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd
import torch
from avalanche.core import SupervisedPlugin
from avalanche.logging import CSVLogger, TextLogger

from cl_spoof.benchmark import BenchmarkData, joint_plan, load_benchmark_data
from cl_spoof.benchmark.datasets import ClipSpec, build_benchmark
from cl_spoof.config import RunConfig
from cl_spoof.errors import FileSystemError, os_error_message
from cl_spoof.infra.checkpoints import read_checkpoint
from cl_spoof.infra.context import RunContext
from cl_spoof.infra.transaction import Transaction, all_or_nothing
from cl_spoof.metrics.official import stage_metrics
from cl_spoof.strategies.registry import get_spec
from cl_spoof.workflows.events import RunEvents, RunSummary
from cl_spoof.workflows.official_inputs import check_score_ids, official_inputs
from cl_spoof.workflows.run_dir import RunWriter, check_same_config
from cl_spoof.workflows.setup import resolve
from cl_spoof.workflows.training import StageResult, Trainer


def default_run_dir(cfg: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<time>-<strategy>-seed<N>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{cfg.strategy.name.replace('+', '_')}-seed{cfg.seed}"


def record_stage(writer: RunWriter, trainer: Trainer, result: StageResult, stage: int,
                 trained_on: str, attacks: list[str], rows: list[dict], learned: list[str],
                 finished: bool, t0: float, official: list[dict] | None = None,
                 stage_official: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """Append stage ``stage``'s row to ``rows`` (and its official metrics to
    ``official``); rank 0 writes its scores, checkpoint, matrix and metrics. Every
    process returns the same matrix and metrics."""
    rows.append({"stage": stage, "trained_on": trained_on,
                 **{a: result.eers.get(a, float("nan")) for a in attacks}})
    if official is not None and stage_official is not None:
        official.append({"trained_on": trained_on, **stage_official})
    if not trainer.ctx.is_main:
        return writer.frames(rows, attacks, learned, official)
    writer.write_stage_outputs(stage, result.scores,
                               trainer.checkpoint(stage, trained_on, attacks, result))
    return writer.write_stage(rows, attacks, learned, finished, time.perf_counter() - t0,
                              official)


@contextlib.contextmanager
def _run_directory(out_dir: Path, ctx: RunContext) -> Iterator[Transaction | None]:
    """Rank 0: all-or-nothing over ``out_dir`` until a stage completes (then kept, for
    ``--resume``). An OS error without a file name (a log write) names the run directory."""
    tx_context = all_or_nothing(out_dir) if ctx.is_main else contextlib.nullcontext()
    with tx_context as tx:
        try:
            yield tx
        except OSError as exc:
            if exc.filename is None:
                raise FileSystemError(f"cannot write {os_error_message(exc, out_dir)}") from exc
            raise


def run_experiment(cfg: RunConfig, out_dir: Path, events: RunEvents | None = None,
                   data: BenchmarkData | None = None,
                   extra_plugins: Sequence[SupervisedPlugin] = (),
                   resume: bool = False, ctx: RunContext | None = None) -> RunSummary:
    """Train ``cfg.strategy`` over the benchmark of ``cfg.data`` and write ``out_dir``.

    ``data`` reuses already loaded benchmark data (compare loads it once);
    ``extra_plugins`` are added to the strategy (e.g. timers in benchmarks/).
    With ``resume`` the run continues after the last completed stage of
    ``out_dir`` (model, optimizer and strategy state from its last checkpoint;
    every stage reseeds, so the result equals an uninterrupted run's); ``cfg`` must
    be the config the run was started with.

    All or nothing until a stage completes: a run that fails (or is interrupted)
    before completing a stage leaves ``out_dir`` as it was before the call (removed
    when the call created it). Completed stages are kept for ``--resume``.

    ``ctx`` says which process this is (default: one local process on
    ``train.device``). Under torchrun every process calls this with the same
    arguments and its own context; training is data-parallel, only rank 0 writes
    ``out_dir`` and reports ``events``, and every process returns the same matrix
    and metrics.
    """
    cfg = resolve(cfg)
    ctx = ctx or RunContext.local(cfg.train.device)
    events = events if (events is not None and ctx.is_main) else RunEvents()
    t0 = time.perf_counter()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ctx.batch_share(cfg.train.batch_size)  # a bad batch size fails before data loading
    spec = get_spec(cfg.strategy.name)
    writer = RunWriter(out_dir, cfg)
    if ctx.is_main and not resume:
        writer.check_new()  # before the transaction: never touch someone else's folder
    with _run_directory(out_dir, ctx) as tx:
        return _run(cfg, out_dir, events, data, extra_plugins, resume, ctx, spec, writer, tx,
                    t0)


def _run(cfg: RunConfig, out_dir: Path, events: RunEvents, data: BenchmarkData | None,
         extra_plugins: Sequence[SupervisedPlugin], resume: bool, ctx: RunContext,
         spec: Any, writer: RunWriter, tx: Transaction | None, t0: float) -> RunSummary:
    rows: list[dict] = ctx.on_main(writer.open_existing if resume else writer.create)
    completed = len(rows)
    official: list[dict] = ctx.on_main(lambda: writer.read_official(completed))

    if data is None:
        data = ctx.local_main_first(lambda: load_benchmark_data(
            cfg.data, seed=cfg.seed, on_stage=events.on_stage, progress=events.on_progress))
    check_score_ids(data)
    inputs = official_inputs(cfg, data)  # reads and checks the ASV file before training
    attacks = [p.attack for p in data.plans]
    train_plans = [joint_plan(data.plans)] if spec.joint else data.plans
    bm = build_benchmark(data.table, data.waveforms, data.plans, ClipSpec.from_config(cfg),
                         train_plans=train_plans)

    # A resumed run logs into its own folder: earlier logs are never overwritten.
    log_dir = out_dir / "logs" / (f"resumed_at_stage_{completed}" if resume else "")
    log_file: IO[str] | None = None
    if ctx.is_main:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(log_dir / "log.txt", "w", encoding="utf-8")  # noqa: SIM115
    try:
        loggers = [TextLogger(log_file), CSVLogger(str(log_dir))] if log_file else []
        trainer = Trainer.build(cfg, ctx, events, loggers, extra_plugins)
        if completed:
            checkpoint = writer.checkpoint_path(completed - 1)

            def read_own_checkpoint() -> dict:
                ckpt = read_checkpoint(checkpoint)
                check_same_config(ckpt.get("config"), cfg, str(checkpoint))
                return ckpt

            trainer.restore(ctx.on_main(read_own_checkpoint), checkpoint, completed,
                            bm.train_stream)
            events.on_stage(f"resuming after stage {completed}/{len(train_plans)}")
        learned: list[str] = [str(r["trained_on"]) for r in rows]
        reported: dict[int, int] = {}
        matrix, metrics = pd.DataFrame(), dict[str, Any]()
        for stage, exp in enumerate(bm.train_stream):
            if stage < completed:
                continue
            events.on_stage(f"stage {stage + 1}/{len(train_plans)}: learning {exp.attack}")
            trainer.train_stage(exp, stage, bm.train_stream)
            learned.append(exp.attack)
            result = trainer.evaluate(bm.test_stream)
            calibration = (trainer.evaluate(bm.calibration_stream).scores
                           if cfg.data.calibration_split is not None else None)
            matrix, metrics = record_stage(writer, trainer, result, stage, exp.attack, attacks,
                                           rows, learned, stage == len(train_plans) - 1, t0,
                                           official, stage_metrics(result.scores, inputs, stage,
                                                                   calibration))
            if tx is not None:
                tx.keep()  # a completed stage stays, whatever happens next
            events.on_result(stage, exp.attack, {a: rows[-1][a] for a in attacks})
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
    return RunSummary(out_dir=out_dir, matrix=matrix, metrics=metrics,
                      seconds=time.perf_counter() - t0)
