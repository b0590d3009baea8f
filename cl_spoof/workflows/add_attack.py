"""Add a new attack to a trained detector: one more experience on an existing run.

A deployed detector meets a new synthesizer; the user collects some of its audio
and updates the detector without the old training data (DFWF needs none) and
without retraining from scratch. :func:`add_attack` is five steps:

1. :func:`_check` checks the name, the run directory (writable, its folders its own,
   not symbolic links) and the options first, so that a failing command changes
   nothing in the run directory;
2. :func:`_collect_new_audio` splits the new audio into train/eval (speaker-disjoint
   where speakers are known);
3. :func:`_assemble` builds the table and its benchmark: bona fide from ``bonafide``
   or, without it, from the run's own data, plus the attacks added earlier; new audio
   already in the data under another role (a run's bona fide file given as new spoof,
   by any path to it) is refused;
4. :func:`_compute` evaluates the earlier checkpoints on the new attack (so its column
   is filled for old stages, stage 0 included), restores the last checkpoint (model,
   optimizer, strategy state; after stage 0 alone, the pretrained model as a run from
   it starts), trains one more experience and evaluates every attack (and
   ``data.pretrained_eval``);
5. :func:`_commit` appends the stage to the EER matrix and metrics, writes its scores
   and checkpoint, records the new attack's utterances (absolute paths, so a later
   add-attack from any folder sees the same data) and refreshes the report, through
   :class:`~cl_spoof.rundir.RunDir`.

The command owns the run directory from step 1 to step 5
(:meth:`~cl_spoof.rundir.RunDir.owning`): a second command on the run is refused,
or waits (``wait``), so it reads the run as this one left it. Step 5 runs inside
:func:`~cl_spoof.infra.transaction.all_or_nothing`: if anything fails or is
interrupted, the run directory is put back as it was, and until it completes readers
see the run without the new stage. The name is checked
(:func:`~cl_spoof.infra.names.check_name`) before anything is read or written.

It trains through the same :class:`~cl_spoof.workflows.trainer.Trainer` as
``run`` (same stage seed, same device choice).
"""

from __future__ import annotations

import io
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from avalanche.logging import TextLogger

from cl_spoof.benchmark import configured_attacks, prepare_benchmark_data, read_run_table
from cl_spoof.benchmark.datasets import ClipSpec, build_benchmark
from cl_spoof.config import RunConfig, override_config, with_overrides
from cl_spoof.data.audio import list_audio_files
from cl_spoof.data.checks import audio_problem
from cl_spoof.data.manifest import id_from_text, read_manifest
from cl_spoof.data.table import BONAFIDE, SPOOF, make_table
from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.infra.context import RunContext
from cl_spoof.infra.names import check_name
from cl_spoof.infra.testhook import pause_point
from cl_spoof.labels import NO_ATTACK
from cl_spoof.metrics.official import OfficialInputs, stage_metrics
from cl_spoof.reporting import build_report
from cl_spoof.rundir import (
    STAGE_BASE,
    CompareDir,
    RunDir,
    RunProgress,
    check_same_config,
    pretrained_columns,
)
from cl_spoof.strategies.registry import STRATEGIES, get_spec
from cl_spoof.workflows.events import RunEvents, RunSummary
from cl_spoof.workflows.run import (
    StageRecord,
    load_pretrained_eval,
    pretrained_eers,
    record_stage,
)
from cl_spoof.workflows.setup import resolve
from cl_spoof.workflows.trainer import StageResult, Trainer, preflight

MIN_FILES = 6  # fewer new files than this cannot give a train and an eval part


def _collect(path: Path, label: str, name: str, split_names: tuple[str, str],
             eval_fraction: float, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Rows for the audio under ``path`` (folder or manifest), split train/eval.

    Unreadable files, and entries of a folder with an audio name that are no audio file
    (a FIFO, a device, a folder, a dangling link: said, never opened), are skipped and
    returned as problem lines. Paths are absolute.
    """
    path = Path(path).expanduser().absolute()
    if path.is_dir():
        files = [str(p) for p in list_audio_files(path, include_unusable=True)]
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


@dataclass(frozen=True)
class _Request:
    """Step 1's outcome: an add-attack that may go ahead on a checked run."""

    run_dir: RunDir  # opened with the run's own config (its metrics keep its strategy)
    name: str
    strategy: str
    cfg: RunConfig  # the run's config with the strategy that learns the new attack
    matrix: pd.DataFrame  # the run's EER matrix so far
    entries: tuple[dict, ...] = ()  # attacks added earlier (``added/added.json``)

    @property
    def old_attacks(self) -> list[str]:
        """The attacks of the run's matrix (not its ``pretrained:<attack>`` columns)."""
        kept = set(pretrained_columns(self.matrix.columns))
        return [c for c in self.matrix.columns if c not in ("stage", "trained_on", *kept)]

    @property
    def stages(self) -> list[int]:
        """The numbers of the run's recorded stages, in order (0 first, for a run from a
        pretrained model)."""
        return [int(k) for k in self.matrix["stage"]]

    @property
    def trained(self) -> int:
        """How many trained stages the run has (stage 0 is not one)."""
        return sum(1 for k in self.stages if k >= STAGE_BASE)

    @property
    def new_stage(self) -> int:
        """The number of the stage that learns the new attack."""
        return self.stages[-1] + 1


@dataclass(frozen=True)
class _NewAudio:
    """Step 2's outcome: the new attack's utterances, split train/eval."""

    spoof: pd.DataFrame
    bonafide: pd.DataFrame  # empty without ``bonafide``
    problems: list[str]  # the skipped files
    sources: dict[str, str | None]  # where they came from: absolute ``spoof``, ``bonafide``


@dataclass(frozen=True)
class _Computed:
    """Step 4's outcome: everything the commit writes."""

    trainer: Trainer
    result: StageResult  # every attack after learning the new one
    earlier_eers: list[float]  # the new attack's EER under each earlier stage's checkpoint
    log: str  # the training log
    pretrained: dict[str, float]  # EER per pretrained:<attack> column (data.pretrained_eval)


#: What ``--set`` may change on add-attack: how the new stage trains, and where the run's
#: own data now is. Model, data split and metrics stay the run's.
OVERRIDABLE = ("train.", "strategy.", "seed", "data.source", "data.cache_dir",
               "data.allow_missing")


def _check_overrides(overrides: Sequence[str]) -> None:
    """Refuse an override of a key add-attack cannot change (it continues the run)."""
    for text in overrides:
        key = text.partition("=")[0].strip()
        if key == "strategy.name":
            raise CLSpoofError(f"--set {text!r}: give the strategy with --strategy")
        if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in OVERRIDABLE):
            raise CLSpoofError(f"--set {text!r}: add-attack continues the run's own model, data "
                               "and metrics; it may change train.*, strategy hyper-parameters, "
                               "seed, data.source (when the run's data moved), data.cache_dir "
                               "and data.allow_missing")


def _run_of(run_path: Path) -> RunDir:
    """The run directory ``run_path`` names (a compare folder is named as one); nothing is
    written."""
    compare = CompareDir(run_path)
    if compare.is_compare():
        runs = [str(r.path) for r in compare.present_runs()]
        raise CLSpoofError(f"{run_path}: a compare folder, not a run; add the attack to one of "
                           f"its runs: {', '.join(runs) or 'none has started'}")
    run_dir = RunDir(run_path)
    run_dir.check_is_run()
    return run_dir


def _check(run_dir: RunDir, name: str, eval_fraction: float, strategy: str,
           overrides: Sequence[str] = ()) -> _Request:
    """Step 1 (the run owned): check the run directory and the options; nothing is
    written."""
    base_cfg = resolve(run_dir.read_config())
    run_dir = RunDir(run_dir.path, base_cfg)
    status = run_dir.status() or {}
    run_dir.check_stage_numbering()
    if not status.get("finished"):
        raise CLSpoofError(f"{run_dir.path}: the run has not finished; resume it first "
                           f"(cl-spoof run --resume {run_dir.path})")
    if status.get("config") is not None:  # config.yaml must still say what the run used
        check_same_config(status["config"], base_cfg, str(run_dir.config_file))
    if not 0 < eval_fraction < 1:
        raise CLSpoofError("--eval-fraction must be between 0 and 1")
    if base_cfg.data.sources:
        raise CLSpoofError(f"{run_dir.path}: the run reads data.sources; add-attack adds an "
                           "attack to runs of one data.source only (add the new data as "
                           "another source and start a new run)")
    if base_cfg.data.experience_by == "family":
        raise CLSpoofError(f"{run_dir.path}: the run learns families of attacks "
                           "(data.experience_by: family); add the new attack to a family of "
                           "data.families and start a new run")
    matrix = run_dir.read_matrix()
    old_attacks = [c for c in matrix.columns if c not in ("stage", "trained_on")]
    if name.lower() in {a.lower() for a in old_attacks}:  # one file per name on any disk
        raise CLSpoofError(f"attack name {name!r} is already in the run "
                           f"({', '.join(old_attacks)})")
    cfg: RunConfig = resolve(override_config(
        with_overrides(base_cfg, strategy={"name": strategy}), overrides, "--set"))
    spec = get_spec(strategy)
    portable = [n for n, s in STRATEGIES.items() if not (s.needs_own_run or s.joint)]
    if spec.joint:
        raise CLSpoofError(f"{strategy} trains once on every attack and cannot add one; "
                           f"use one of: {', '.join(portable)}")
    entries = run_dir.added_entries()
    last = entries[-1]["strategy"] if entries else base_cfg.strategy.name  # of the last stage
    trained = any(int(k) >= STAGE_BASE for k in matrix["stage"])  # else: stage 0 alone
    if spec.needs_own_run and last != strategy and trained:
        raise CLSpoofError(f"{strategy} needs the state of a {strategy} run (importances or "
                           f"memories); the run's last stage was trained with {last!r}: "
                           f"use one of: {', '.join(portable)}")
    run_dir.check_writable()  # before the training, not after it
    preflight(cfg)  # the strategy's settings and layers, before any audio is read
    return _Request(run_dir=run_dir, name=name, strategy=strategy, cfg=cfg, matrix=matrix,
                    entries=tuple(entries))


def _collect_new_audio(request: _Request, spoof: Path, bonafide: Path | None,
                       eval_fraction: float) -> _NewAudio:
    """Step 2: the new attack's audio (and the bona fide given with it), split train/eval."""
    cfg = request.cfg
    splits = (cfg.data.train_split, cfg.data.test_split)
    sources = {"spoof": str(Path(spoof).expanduser().absolute()),
               "bonafide": str(Path(bonafide).expanduser().absolute()) if bonafide else None}
    new_spoof, problems = _collect(spoof, SPOOF, request.name, splits, eval_fraction, cfg.seed)
    if bonafide is None:
        return _NewAudio(spoof=new_spoof, bonafide=make_table([]), problems=problems,
                         sources=sources)
    new_bona, bona_problems = _collect(bonafide, BONAFIDE, request.name, splits,
                                       eval_fraction, cfg.seed)
    return _NewAudio(spoof=new_spoof, bonafide=new_bona, problems=problems + bona_problems,
                     sources=sources)


def _assemble(request: _Request, new: _NewAudio, bonafide_given: bool,
              events: RunEvents) -> tuple[Any, list[str]]:
    """Step 3: the table (the run's own data, the attacks added earlier and the new audio)
    and its benchmark; returns the benchmark and its attacks, the new one last."""
    cfg = request.cfg
    try:
        events.on_stage("reading the run's own data")
        table, source = read_run_table(cfg.data, events.on_progress)
        have_run_data = True
    except (CLSpoofError, OSError) as exc:
        if not bonafide_given:
            raise CLSpoofError(
                f"the run's own data is not available ({exc}); give bona fide audio with "
                "--bonafide PATH (a folder or manifest) to add an attack without it") from None
        table, source, have_run_data = make_table([]), Path(cfg.data.source), False
    earlier = request.run_dir.added_rows()
    _refuse_audio_in_two_roles(pd.concat([table, *([earlier] if earlier is not None else [])],
                                         ignore_index=True), new)
    if bonafide_given and have_run_data:  # the new bona fide replaces the run's own here
        table = table[table["label"] != BONAFIDE]
    parts = [table] + ([earlier] if earlier is not None else []) + [new.spoof, new.bonafide]
    full = make_table(pd.concat(parts, ignore_index=True))
    if have_run_data:
        attacks = [*configured_attacks(table, cfg.data), *[
            a for a in (earlier["attack"].unique() if earlier is not None else [])
            if a != NO_ATTACK], request.name]
    else:
        attacks = [request.name]
    data = prepare_benchmark_data(full, attacks, cfg.data, cfg.seed, str(source),
                                  events.on_stage, events.on_progress)
    return build_benchmark(data.table, data.waveforms, data.plans,
                           ClipSpec.from_config(cfg)), attacks


def _file_identity(path: str) -> tuple[int, int] | None:
    """The device and inode of the file ``path`` leads to (symbolic links followed)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _role(label: str, attack: str) -> str:
    return "bona fide" if label == BONAFIDE else f"spoof of attack {attack}"


def _refuse_audio_in_two_roles(known: pd.DataFrame, new: _NewAudio) -> None:
    """Refuse new audio already in the data under another role, whatever path leads to it
    (a symbolic link, a hard link, another spelling): a new spoof file that is one of the
    run's files (its bona fide above all: it would be evaluated as both), a new bona fide
    file that is one of the run's spoof files, or one file given as both new spoof and new
    bona fide."""
    owners: dict[tuple[int, int], tuple[str, str]] = {}
    for path, label, attack in zip(known["path"], known["label"], known["attack"], strict=True):
        ident = _file_identity(path)
        if ident is not None:
            owners.setdefault(ident, (path, _role(label, attack)))
    new_bona: dict[tuple[int, int], str] = {}
    for path in new.bonafide["path"]:
        ident = _file_identity(path)
        if ident is None:
            continue
        held = owners.get(ident)
        if held is not None and held[1] != "bona fide":
            raise DataError(f"{path}: new bona fide audio that is the run's {held[0]} "
                            f"({held[1]}); one file cannot be both bona fide and spoof: "
                            "remove it from --bonafide")
        new_bona.setdefault(ident, path)
    for path in new.spoof["path"]:
        ident = _file_identity(path)
        if ident is None:
            continue
        if ident in owners:
            other, role = owners[ident]
            raise DataError(f"{path}: new spoof audio that is already in the run's data as "
                            f"{other} ({role}); one file cannot be both bona fide and spoof "
                            "or two attacks: remove it from --spoof")
        if ident in new_bona:
            raise DataError(f"{path}: given both as new spoof audio and as new bona fide "
                            f"audio ({new_bona[ident]}); one file cannot be both bona fide and "
                            "spoof: remove it from one of --spoof and --bonafide")


def _compute(request: _Request, bm: Any, attacks: list[str], events: RunEvents) -> _Computed:
    """Step 4: evaluate the earlier checkpoints on the new attack, restore the last one,
    learn the new attack and evaluate every attack (nothing written yet)."""
    cfg, run_dir, name = request.cfg, request.run_dir, request.name
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ctx = RunContext.local(cfg.train.device)
    log_buffer = io.StringIO()  # written to logs/added_<NAME>/ only if everything succeeds
    trainer = Trainer.build(cfg, ctx, events, [TextLogger(log_buffer)])
    events.on_stage(f"evaluating the {len(request.stages)} earlier stage(s) on {name}")
    new_test = [bm.test_stream[len(attacks) - 1]]
    earlier_eers = []
    for k in request.stages:
        trainer.load_model(run_dir.read_checkpoint(k), run_dir.checkpoint_path(k))
        earlier_eers.append(trainer.evaluate(new_test).eers[name])
    last = request.stages[-1]
    trainer.restore(run_dir.read_checkpoint(last), run_dir.checkpoint_path(last),
                    request.trained, bm.train_stream)
    events.on_stage(f"stage {request.new_stage}: learning {name} with {request.strategy}")
    trainer.train_stage(bm.train_stream[len(attacks) - 1], request.new_stage, bm.train_stream)
    result = trainer.evaluate(bm.test_stream)
    pretrained = pretrained_eers(trainer, load_pretrained_eval(cfg, ctx, events))
    return _Computed(trainer=trainer, result=result, earlier_eers=earlier_eers,
                     log=log_buffer.getvalue(), pretrained=pretrained)


def _commit(request: _Request, new: _NewAudio, computed: _Computed, report: bool,
            events: RunEvents, t0: float) -> tuple[pd.DataFrame, dict]:
    """Step 5: write the new stage, its log, the new attack's utterances and the added
    list (and refresh the report), all or nothing; returns the new matrix and metrics."""
    run_dir, name = request.run_dir, request.name
    recorded = len(request.matrix)
    rows = [{**row, name: eer} for row, eer in zip(request.matrix.to_dict("records"),
                                                    computed.earlier_eers, strict=True)]
    entry = {"name": name, "stage": request.new_stage, "strategy": request.strategy,
             **new.sources, "skipped_files": new.problems}
    with run_dir.change("add-attack"):
        # Without the run's own data only the new attack is evaluated (old columns: NaN).
        # Official metrics of the new stage: pooled EER and minDCF (no calibration data here).
        progress = RunProgress(rows=tuple(rows),
                               official=tuple(run_dir.read_official(recorded)))
        record = StageRecord(stage=request.new_stage, trained_on=name,
                             attacks=[*request.old_attacks, name], result=computed.result,
                             official=stage_metrics(computed.result.scores, OfficialInputs(),
                                                    request.new_stage), last=True,
                             pretrained=computed.pretrained)
        _, matrix, metrics = record_stage(run_dir, computed.trainer, progress, record, t0)
        pause_point("add-attack:writing")
        run_dir.write_added_log(name, computed.log)
        run_dir.write_added(name, pd.concat([new.spoof, new.bonafide], ignore_index=True),
                            [*request.entries, entry])
        if report:
            events.on_stage("refreshing the report")
            build_report([run_dir.path], run_dir.report_dir)
    return matrix, metrics


def add_attack(run_dir: Path, name: str, spoof: Path, bonafide: Path | None = None,
               eval_fraction: float = 0.3, strategy: str = "dfwf",
               events: RunEvents | None = None,
               report: bool = True, overrides: Sequence[str] = (), wait: bool = False
               ) -> tuple[RunSummary, list[str]]:
    """Train one more experience on ``run_dir`` for attack ``name``; returns the summary
    and the problems of skipped input files. With ``report`` it also refreshes
    ``run_dir/report/``. ``overrides`` (``train.epochs=2``, ...) change how the new
    stage trains (:data:`OVERRIDABLE`). All or nothing: on any failure the run
    directory is left as it was. Refused while another command owns the run, or, with
    ``wait``, after it."""
    events = events or RunEvents()
    t0 = time.perf_counter()
    check_name(name)
    _check_overrides(overrides)
    run = _run_of(Path(run_dir))
    with run.owning("add-attack", wait):
        pause_point("add-attack:owned")
        request = _check(run, name, eval_fraction, strategy, overrides)
        new = _collect_new_audio(request, spoof, bonafide, eval_fraction)
        bm, attacks = _assemble(request, new, bonafide is not None, events)
        computed = _compute(request, bm, attacks, events)
        matrix, metrics = _commit(request, new, computed, report, events, t0)
    events.on_result(request.new_stage, name, {a: matrix.iloc[-1][a] for a in matrix.columns
                                               if a != "trained_on"})
    return RunSummary(out_dir=request.run_dir.path, matrix=matrix, metrics=metrics,
                      seconds=time.perf_counter() - t0), new.problems
