"""Several strategies x seeds on one benchmark, and the comparison table.

Every run uses the same data (loaded and cached once), the same initial
weights per seed (the model is built right after seeding, before anything
strategy-specific) and the same data order per stage (every stage reseeds).
Runs can go side by side in separate processes (``jobs``, :func:`fan_out`) or,
under ``torchrun``, each run data-parallel over all ranks. The compare directory
(``compare.json``, the shared config, one run directory per strategy and seed, the
comparison table) is read and written through :class:`~cl_spoof.rundir.CompareDir`.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cl_spoof.benchmark import load_benchmark_data
from cl_spoof.config import RunConfig, with_absolute_paths, with_overrides
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.context import RunContext
from cl_spoof.metrics.definitions import run_keys
from cl_spoof.reporting.aggregate import comparison_table
from cl_spoof.reporting.render import OFFICIAL_NOTE, comparison_display, to_markdown
from cl_spoof.rundir import CompareDir, RunDir, default_run_label
from cl_spoof.strategies.registry import check_strategy_name
from cl_spoof.workflows.events import RunEvents
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import resolve
from cl_spoof.workflows.trainer import preflight


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
                events: RunEvents | None = None, resume: bool = False,
                jobs: int = 1, ctx: RunContext | None = None,
                label: str | None = None, wait: bool = False) -> pd.DataFrame:
    """Run every strategy for every seed under ``out_dir``; returns the comparison table.

    With ``resume`` an interrupted compare directory is completed: finished runs
    are kept, interrupted ones resumed, missing ones started. ``jobs > 1`` runs
    that many runs at once in separate processes (:func:`fan_out`). Under
    ``torchrun`` every run is data-parallel over all ranks instead, and only
    rank 0 writes. ``ctx`` says which process this is (default: one local process).
    ``label`` is added to every run's label (``naive`` -> ``naive LABEL``) and kept in
    ``compare.json``, so a resumed comparison labels its runs alike. The compare
    directory and each of its runs have one owner at a time: while another command owns
    one the call is refused, or, with ``wait``, waits for it.
    """
    cfg = resolve(cfg if resume else with_absolute_paths(cfg))  # as a run stores it
    ctx = ctx or RunContext.local(cfg.train.device)
    events = events if (events is not None and ctx.is_main) else RunEvents()
    out_dir = Path(out_dir)
    if jobs > 1 and ctx.distributed:
        raise CLSpoofError("--jobs runs independent runs side by side; under torchrun every "
                           "run is already data-parallel over all ranks: use one or the other")
    if resume and label is None:
        label = ctx.on_main(lambda: _saved_label(CompareDir(out_dir)))
    spec: dict[str, Any] = {"strategies": list(strategies), "seeds": list(seeds)}
    if label:
        spec["label"] = label
    compare = CompareDir(out_dir)
    if not resume:
        ctx.on_main(compare.check_new)
    for name in strategies:  # every strategy's model and settings, before the data is read
        preflight(with_overrides(cfg, strategy={"name": name}))
    with contextlib.ExitStack() as stack:
        def own() -> None:  # rank 0; every rank learns of a refusal
            # A new compare directory is all or nothing until a run completes a stage.
            stack.enter_context(compare.owning("compare --resume", wait) if resume else
                                compare.change("compare", wait,
                                               keep_if=compare.any_stage_completed))
            _check_dir(spec, compare, resume)

        ctx.on_main(own)
        return _run_compare(cfg, strategies, seeds, out_dir, events, resume, jobs, ctx, spec,
                            wait)


def _run_compare(cfg: RunConfig, strategies: Sequence[str], seeds: Sequence[int],
                 out_dir: Path, events: RunEvents, resume: bool, jobs: int, ctx: RunContext,
                 spec: dict, wait: bool) -> pd.DataFrame:
    data = ctx.local_main_first(lambda: load_benchmark_data(
        cfg.data, seed=cfg.seed, on_stage=events.on_stage, progress=events.on_progress))
    compare = CompareDir(out_dir)
    if not resume:
        ctx.on_main(lambda: compare.create(cfg, spec))
    todo: list[RunTodo] = []
    tag = spec.get("label")
    for seed in seeds:
        for name in strategies:
            run = compare.run_dir(name, seed)
            finished, started = ctx.on_main(functools.partial(_run_dir_state, run))
            if finished:
                events.on_stage(f"{name}, seed {seed}: already finished")
            else:
                run_cfg = resolve(with_overrides(cfg, strategy={"name": name}, seed=seed))
                run_label = f"{default_run_label(run_cfg)} {tag}" if tag else None
                todo.append((run_cfg, run.path, started, run_label))
    total = len(strategies) * len(seeds)
    done_before = total - len(todo)  # finished before a --resume
    if jobs > 1 and todo:
        fan_out(todo, jobs, events, done_before=done_before, total=total, wait=wait)
    else:
        for k, (run_cfg, run_dir, started, run_label) in enumerate(todo, start=1):
            events.on_overall("runs", done_before + k - 1, total)
            events.on_stage(f"run {k}/{len(todo)}: {run_cfg.strategy.name}, seed "
                            f"{run_cfg.seed}" + (" (resuming)" if started else ""))
            run_experiment(run_cfg, run_dir, events, data=data, resume=started, ctx=ctx,
                           label=run_label, wait=wait)
            events.on_overall("runs", done_before + k, total)

    def table_of_runs() -> pd.DataFrame:
        table = comparison_table(collect_metrics(out_dir, strategies, seeds))
        write_comparison(out_dir, table)
        return table

    return ctx.on_main(table_of_runs)


def _saved_label(compare: CompareDir) -> str | None:
    """The label ``compare.json`` keeps (None when absent or unreadable: the check that
    follows names the problem)."""
    try:
        label = compare.read_spec().get("label")
    except CLSpoofError:
        return None
    return label if isinstance(label, str) else None


def _check_dir(spec: dict, compare: CompareDir, resume: bool) -> None:
    """Refuse a compare directory that is not new or, resuming, one that asked for
    strategies, seeds or a label this call drops. A resume may ask for more strategies or
    seeds than the directory holds: ``compare.json`` then lists them too (the comparison
    grows; its config is the directory's own)."""
    if resume:
        saved = _read_spec(compare)
        if saved == spec:
            return
        widened = {"strategies": saved["strategies"] + [s for s in spec["strategies"]
                                                        if s not in saved["strategies"]],
                   "seeds": saved["seeds"] + [s for s in spec["seeds"]
                                              if s not in saved["seeds"]]}
        if saved.get("label"):
            widened["label"] = saved["label"]
        dropped = ([s for s in saved["strategies"] if s not in spec["strategies"]]
                   + [f"seed {s}" for s in saved["seeds"] if s not in spec["seeds"]])
        if dropped or saved.get("label") != spec.get("label"):
            what = ", ".join(dropped) if dropped else f"label {saved.get('label')!r}"
            raise CLSpoofError(f"{compare.spec_file} asks for {saved}, not {spec}: a resumed "
                               f"comparison keeps what it has ({what}) and may only add "
                               "strategies or seeds")
        compare.write_spec(widened)
        return
    compare.check_new()


def _read_spec(compare: CompareDir) -> dict:
    """``compare.json``: the strategies and seeds asked for, every strategy name checked."""
    spec = compare.read_spec()
    for name in spec["strategies"]:
        check_strategy_name(str(name))
    return spec


def _run_dir_state(run_dir: RunDir) -> tuple[bool, bool]:
    """(finished, started) of one run directory of a compare."""
    return run_dir.finished(), run_dir.started()


def _init_job(slots: Any, threads: int) -> None:
    """Worker set-up: its own torch thread count and, on a multi-GPU machine, its own GPU."""
    slot = slots.get()
    torch.set_num_threads(threads)  # run_experiment overrides it when train.threads > 0
    if torch.cuda.is_available():
        torch.cuda.set_device(slot % torch.cuda.device_count())


def _run_job(cfg: RunConfig, run_dir: Path, resume: bool, label: str | None = None,
             wait: bool = False) -> float:
    return run_experiment(cfg, run_dir, resume=resume, label=label, wait=wait).seconds


def side_by_side(runs: int, cores: int | None = None) -> int:
    """How many of ``runs`` independent runs to start at once on ``cores`` CPU cores
    (default: this machine's): one per core, never more than there are runs. Each then
    trains on one core, which on a CPU finishes a set of small runs sooner than running
    them one after another on every core (small models scale poorly over threads)."""
    return max(1, min(runs, cores or os.cpu_count() or 1))


def oversubscription(threads: Sequence[int], jobs: int, cores: int) -> str | None:
    """A warning when runs that ask for ``threads`` each, ``jobs`` at a time, need more
    threads than there are ``cores`` (``train.threads: 0`` shares the cores out)."""
    asked = max(threads, default=0)
    if asked * min(jobs, len(threads)) > cores:
        return (f"warning: {jobs} jobs x train.threads {asked} > {cores} cores; "
                "set train.threads: 0 to share the cores out")
    return None


#: One run of a comparison still to do: (config, run directory, resume, label or None).
RunTodo = tuple[RunConfig, Path, bool, str | None]


def fan_out(runs: Sequence[RunTodo], jobs: int, events: RunEvents | None = None,
            done_before: int = 0, total: int | None = None, wait: bool = False) -> None:
    """Run independent runs ``(config, run_dir, resume, label)`` in ``jobs`` processes at once.

    The runs share nothing: each process loads the benchmark from the (already
    built) waveform cache, uses its own threads (``train.threads``, or the CPU
    cores divided by ``jobs`` when that is 0) and, where there are GPUs, GPU
    ``slot % count``. A failed run does not stop the others; all failures are
    raised together at the end (``compare --resume`` then redoes only those).
    ``events.on_overall`` counts the runs done out of ``total`` (``done_before`` of them
    finished earlier).
    """
    events = events or RunEvents()
    ctx = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
    slots = ctx.Queue()
    for slot in range(jobs):
        slots.put(slot)
    cores = os.cpu_count() or 1
    threads = max(1, cores // jobs)
    warning = oversubscription([run[0].train.threads for run in runs], jobs, cores)
    if warning:
        events.on_stage(warning)
    failures: list[str] = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_job,
                             initargs=(slots, threads)) as pool:
        futures = {pool.submit(_run_job, cfg, run_dir, resume, label, wait): (cfg, run_dir)
                   for cfg, run_dir, resume, label in runs}
        total = total if total is not None else len(runs) + done_before
        events.on_overall(f"runs ({jobs} at a time)", done_before, total)
        for done, future in enumerate(as_completed(futures), start=1):
            cfg, run_dir = futures[future]
            what = f"{cfg.strategy.name}, seed {cfg.seed}"
            try:
                events.on_stage(f"finished {what} in {future.result():.0f} s ({run_dir})")
            except Exception as exc:  # report every failed run, keep the others going
                failures.append(f"{what} ({run_dir}): {type(exc).__name__}: {exc}")
                events.on_stage(f"FAILED {what}: {exc}")
            events.on_overall(f"runs ({jobs} at a time)", done_before + done, total)
    if failures:
        raise CLSpoofError(f"{len(failures)} of {len(runs)} run(s) failed; fix the cause and "
                           "complete them with `cl-spoof compare --resume`:\n  "
                           + "\n  ".join(failures))


def load_compare_spec(out_dir: Path) -> tuple[RunConfig, list[str], list[int]]:
    """Config, strategies and seeds of an existing compare directory (for ``--resume``)."""
    compare = CompareDir(out_dir)
    spec = _read_spec(compare)
    return compare.read_config(), spec["strategies"], spec["seeds"]


def collect_metrics(out_dir: Path, strategies: Sequence[str], seeds: Sequence[int]
                    ) -> pd.DataFrame:
    """One row per finished run: label, strategy, seed and its headline metrics."""
    compare = CompareDir(out_dir)
    rows = []
    for name in strategies:
        for seed in seeds:
            m = compare.run_metrics(name, seed)
            status = compare.run_dir(name, seed).status() or {}
            rows.append({"label": status.get("label") or name, "strategy": name, "seed": seed,
                         **{k: (np.nan if m.get(k) is None else m[k]) for k in run_keys()}})
    return pd.DataFrame(rows)


def write_comparison(out_dir: Path, table: pd.DataFrame) -> None:
    """``comparison.csv`` (numbers) and ``comparison.md`` (mean ± std), atomically."""
    md = ("EER in %, BWT and forgetting in EER points (BWT < 0 and forgetting > 0 mean the "
          "detector forgot); mean ± std over seeds.\n\n" + to_markdown(comparison_display(table))
          + "\n" + OFFICIAL_NOTE + "\n")
    CompareDir(out_dir).write_comparison(table, md)
