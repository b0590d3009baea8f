"""One continual run: train experience by experience, evaluate every attack after each.

The run directory (all files written atomically, updated after every stage):

- ``config.yaml``: the resolved config;
- ``eer_matrix.csv``: ``stage, trained_on`` then one column per attack (EER %);
- ``metrics.json``: :func:`cl_spoof.metrics.continual.summarize` of the matrix;
- ``scores/stage_<k>.txt``: ASVspoof score lines ``utt_id attack key score``;
- ``checkpoints/stage_<k>.pt``: model (and optimizer) state, loadable with
  ``torch.load(..., weights_only=True)``;
- ``logs/``: Avalanche's text log and CSV logs;
- ``run.json``: status (completed stages, finished flag).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.logging import CSVLogger, TextLogger
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_spoof import distributed as dist
from cl_spoof.benchmark import (
    JOINT,
    BenchmarkData,
    build_benchmark,
    joint_plan,
    load_benchmark_data,
)
from cl_spoof.checkpoints import (
    CHECKPOINT_FORMAT,
    load_model_state,
    read_checkpoint,
    save_checkpoint,
)
from cl_spoof.config import RunConfig, load_config, to_dict, to_yaml
from cl_spoof.errors import CLSpoofError
from cl_spoof.io import atomic_path, atomic_write_text
from cl_spoof.metrics.continual import summarize
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.metrics.plugin import EERPluginMetric
from cl_spoof.models import build_model
from cl_spoof.runtime import seed_everything
from cl_spoof.strategies import make_strategy
from cl_spoof.strategies.state import check_resumable, export_state, restore_state


class TrainingError(CLSpoofError):
    """Training diverged (NaN/Inf loss) or could not run."""


@dataclass
class RunEvents:
    """Callbacks through which a run reports progress (the CLI draws them)."""

    on_stage: Callable[[str], None] = lambda text: None
    # (description, done, total) for training/eval progress bars
    on_progress: Callable[[str, int, int], None] = lambda desc, done, total: None
    on_result: Callable[[int, str, dict[str, float]], None] = lambda k, a, eers: None


@dataclass
class RunSummary:
    """What a finished run produced."""

    out_dir: Path
    matrix: pd.DataFrame  # index stage, columns: trained_on + attacks
    metrics: dict
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class ProgressPlugin(SupervisedPlugin, supports_distributed=True):
    """Reports mini-batch progress of training and evaluation, and guards against NaN loss."""

    def __init__(self, events: RunEvents) -> None:
        super().__init__()
        self.events = events
        self.label = ""

    def before_training_epoch(self, strategy, **kwargs) -> None:
        exp = strategy.experience
        self._desc = (f"train {getattr(exp, 'attack', '?')} epoch "
                      f"{strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs}")
        self.events.on_progress(self._desc, 0, len(strategy.dataloader))

    def after_training_iteration(self, strategy, **kwargs) -> None:
        self.events.on_progress(self._desc, strategy.clock.train_epoch_iterations,
                                len(strategy.dataloader))

    def before_backward(self, strategy, **kwargs) -> None:
        if not torch.isfinite(strategy.loss).all():
            exp = strategy.experience
            raise TrainingError(
                f"the loss became {strategy.loss.item()} while training on attack "
                f"{getattr(exp, 'attack', '?')} (epoch {strategy.clock.train_exp_epochs + 1}, "
                f"iteration {strategy.clock.train_epoch_iterations + 1}); lower train.lr"
            )

    def before_eval_exp(self, strategy, **kwargs) -> None:
        self._desc = f"evaluate {getattr(strategy.experience, 'attack', '?')}"
        self._done = 0
        self.events.on_progress(self._desc, 0, len(strategy.dataloader))

    def after_eval_iteration(self, strategy, **kwargs) -> None:
        self._done += 1
        self.events.on_progress(self._desc, self._done, len(strategy.dataloader))


def default_run_dir(cfg: RunConfig, root: Path = Path("runs")) -> Path:
    """``runs/<time>-<strategy>-seed<N>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{cfg.strategy.name.replace('+', '_')}-seed{cfg.seed}"


def score_frame(results: dict) -> pd.DataFrame:
    """All scores of one stage's evaluation, bona fide once, ``utt_id attack key score``."""
    frames = [r.to_frame() for r in results.values()]
    scores = pd.concat(frames, ignore_index=True)
    return scores.drop_duplicates(subset="utt_id", keep="first").reset_index(drop=True)


def write_scores(path: Path, scores: pd.DataFrame) -> None:
    """ASVspoof-style score file (higher score = more bona fide), written atomically."""
    lines = [f"{u} {a} {k} {s:.6f}" for u, a, k, s in
             scores[["utt_id", "attack", "key", "score"]].itertuples(index=False)]
    atomic_write_text(path, "\n".join(lines) + "\n")


class RunWriter:
    """Owns a run directory: refuses to overwrite, writes each file atomically."""

    def __init__(self, out_dir: Path, cfg: RunConfig) -> None:
        self.out_dir = Path(out_dir)
        self.cfg = cfg

    def create(self) -> None:
        if self.out_dir.exists() and any(self.out_dir.iterdir()):
            raise CLSpoofError(f"{self.out_dir}: run directory exists and is not empty; "
                               "choose another --out, or --resume it (nothing was overwritten)")
        for sub in ("scores", "checkpoints", "logs"):
            (self.out_dir / sub).mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out_dir / "config.yaml", to_yaml(self.cfg))

    def create_empty(self) -> list[dict]:
        """:meth:`create`, returning the (no) completed stages like :meth:`open_existing`."""
        self.create()
        return []

    def open_existing(self) -> list[dict]:
        """Rows of the stages an interrupted run completed (for resuming it)."""
        config = self.out_dir / "config.yaml"
        if not config.is_file():
            raise CLSpoofError(f"{self.out_dir}: not a run directory (no config.yaml)")
        if to_yaml(load_config(config)) != to_yaml(self.cfg):  # keys added later: defaults
            raise CLSpoofError(f"{config}: differs from the config of the run being resumed")
        status_file = self.out_dir / "run.json"
        if not status_file.is_file():
            return []  # interrupted before the first stage ended
        status = json.loads(status_file.read_text())
        if status.get("finished"):
            raise CLSpoofError(f"{self.out_dir}: the run already finished; nothing to resume")
        matrix = pd.read_csv(self.out_dir / "eer_matrix.csv")
        rows = matrix.to_dict("records")[: int(status["completed_stages"])]
        for k in range(len(rows)):
            if not (self.out_dir / "checkpoints" / f"stage_{k}.pt").is_file():
                raise CLSpoofError(f"{self.out_dir}: checkpoints/stage_{k}.pt is missing")
        return rows

    def frames(self, rows: list[dict], attacks: list[str], learned: list[str]
               ) -> tuple[pd.DataFrame, dict]:
        """The EER matrix and metrics of ``rows`` (what :meth:`write_stage` writes)."""
        matrix = pd.DataFrame(rows).set_index("stage")
        matrix = matrix[["trained_on", *attacks]]
        metrics = summarize(matrix[attacks], learned)
        metrics["strategy"] = self.cfg.strategy.name
        metrics["seed"] = self.cfg.seed
        return matrix, metrics

    def write_stage(self, rows: list[dict], attacks: list[str], learned: list[str],
                    finished: bool, seconds: float) -> tuple[pd.DataFrame, dict]:
        matrix, metrics = self.frames(rows, attacks, learned)
        with atomic_path(self.out_dir / "eer_matrix.csv") as tmp:
            matrix.to_csv(tmp, float_format="%.4f")
        atomic_write_text(self.out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        status = {"completed_stages": len(rows), "total_stages": len(learned) if finished
                  else None, "finished": finished, "seconds": round(seconds, 2),
                  "strategy": self.cfg.strategy.name, "seed": self.cfg.seed}
        atomic_write_text(self.out_dir / "run.json", json.dumps(status, indent=2) + "\n")
        return matrix, metrics


def run_experiment(cfg: RunConfig, out_dir: Path, events: RunEvents | None = None,
                   data: BenchmarkData | None = None,
                   extra_plugins: Sequence[SupervisedPlugin] = (),
                   resume: bool = False) -> RunSummary:
    """Train ``cfg.strategy`` over the benchmark of ``cfg.data`` and write ``out_dir``.

    ``data`` reuses already loaded benchmark data (compare loads it once);
    ``extra_plugins`` are added to the strategy (e.g. timers in benchmarks/).
    With ``resume`` the run continues after the last completed stage of
    ``out_dir`` (model, optimizer and strategy state from its last checkpoint;
    every stage reseeds, so the result equals an uninterrupted run's).

    Inside a process group (``torchrun``, see :mod:`cl_spoof.distributed`) every
    rank calls this with the same arguments; training is data-parallel, only
    rank 0 writes ``out_dir`` and reports ``events``, and every rank returns
    the same matrix and metrics.
    """
    main = dist.is_main()
    events = events if (events is not None and main) else RunEvents()
    t0 = time.perf_counter()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    device = dist.process_device(cfg.train.device)
    dist.per_rank_batch(cfg.train.batch_size)  # a bad batch size fails before data loading
    writer = RunWriter(out_dir, cfg)
    if resume:
        check_resumable(cfg.strategy.name)
    rows: list[dict] = dist.on_main(writer.open_existing if resume else writer.create_empty)
    completed = len(rows)

    if data is None:
        data = dist.local_main_first(lambda: load_benchmark_data(
            cfg.data, seed=cfg.seed, on_stage=events.on_stage, progress=events.on_progress))
    attacks = [p.attack for p in data.plans]
    joint = cfg.strategy.name == JOINT
    train_plans = [joint_plan(data.plans)] if joint else data.plans
    bm = build_benchmark(data.table, data.waveforms, data.plans, cfg.data.num_samples,
                         train_plans=train_plans)

    # A resumed run logs into its own folder: earlier logs are never overwritten.
    log_dir = out_dir / "logs" / (f"resumed_at_stage_{completed}" if resume else "")
    log_file = None
    if main:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(log_dir / "log.txt", "w", encoding="utf-8")  # noqa: SIM115
    try:
        loggers = [TextLogger(log_file), CSVLogger(str(log_dir))] if main else []
        strategy, eer_metric = build_strategy(cfg, device, events, loggers, extra_plugins)
        if completed:
            checkpoint = out_dir / "checkpoints" / f"stage_{completed - 1}.pt"
            restore_run(strategy, dist.on_main(lambda: read_checkpoint(checkpoint)),
                        checkpoint, completed, bm.train_stream)
            events.on_stage(f"resuming after stage {completed}/{len(train_plans)}")
        learned: list[str] = [str(r["trained_on"]) for r in rows]
        reported: dict[int, int] = {}
        matrix, metrics = pd.DataFrame(), {}
        for stage, exp in enumerate(bm.train_stream):
            if stage < completed:
                continue
            events.on_stage(f"stage {stage + 1}/{len(train_plans)}: learning {exp.attack}")
            strategy.train_epochs = (cfg.train.first_epochs or cfg.train.epochs) if stage == 0 \
                else cfg.train.epochs
            # Same data order per stage, any strategy; other ranks get their own crops.
            seed_everything(dist.rank_seed(cfg.seed * 1000 + stage))
            strategy.train(exp, num_workers=cfg.train.workers)
            dist.sync_strategy(strategy, stage + 1, bm.train_stream)
            learned.append(exp.attack)
            matrix, metrics = record_stage(writer, strategy, bm.test_stream, eer_metric, stage,
                                           exp.attack, attacks, rows, learned,
                                           stage == len(train_plans) - 1, t0)
            eers = {a: rows[-1][a] for a in attacks}
            events.on_result(stage, exp.attack, eers)
            for plugin in strategy.plugins:  # e.g. DFWF: "no bona fide in this experience"
                for message in getattr(plugin, "warnings", [])[reported.get(id(plugin), 0):]:
                    events.on_stage(f"warning: {message}")
                    if log_file is not None:
                        log_file.write(f"WARNING: {message}\n")
                reported[id(plugin)] = len(getattr(plugin, "warnings", []))
    finally:
        if log_file is not None:
            log_file.close()
    return RunSummary(out_dir=out_dir, matrix=matrix, metrics=metrics,
                      seconds=time.perf_counter() - t0)


def build_strategy(cfg: RunConfig, device: torch.device, events: RunEvents,
                   loggers: Sequence, extra_plugins: Sequence[SupervisedPlugin] = ()
                   ) -> tuple[SupervisedTemplate, EERPluginMetric]:
    """The fresh model, optimizer and strategy of ``cfg``, and the EER metric it reports to.

    Seeds first, so the same seed gives the same initial weights whatever the
    strategy (and on every rank). Under torchrun the strategy trains data-parallel.
    """
    seed_everything(cfg.seed)
    model = build_model(cfg.model.preset, **cfg.model.overrides)
    if cfg.train.compile:
        model.compile_frontend(cfg.train.compile_backend)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr,
                                 weight_decay=cfg.train.weight_decay)
    eer_metric = EERPluginMetric()
    evaluator = EvaluationPlugin(eer_metric, accuracy_metrics(epoch=True, experience=True),
                                 loss_metrics(epoch=True, experience=True), loggers=list(loggers))
    plugins: list[SupervisedPlugin] = [ProgressPlugin(events), *extra_plugins]
    if dist.is_distributed():  # first: it must unwrap the model before others copy it
        plugins.insert(0, dist.DistributedPlugin(device, cfg.seed))
    strategy = make_strategy(cfg, model, optimizer, device, evaluator, plugins=plugins)
    if dist.is_distributed():
        # Avalanche flags its LwF/EWC/SI/GEM/A-GEM plugins as single-process only;
        # dist.sync_strategy makes their state rank 0's after every experience.
        for plugin in strategy.plugins:
            plugin.supports_distributed = True
    return strategy, eer_metric


def record_stage(writer: RunWriter, strategy, test_stream, eer_metric: EERPluginMetric,
                 stage: int, trained_on: str, attacks: list[str], rows: list[dict],
                 learned: list[str], finished: bool, t0: float) -> tuple[pd.DataFrame, dict]:
    """Evaluate every attack after a stage; write its scores, checkpoint, matrix row, metrics."""
    cfg, out_dir = writer.cfg, writer.out_dir
    eer_metric.results.clear()
    with torch.inference_mode():  # cheaper than Avalanche's own no_grad
        strategy.eval(test_stream, num_workers=cfg.train.workers)
    results = eer_metric.results[max(eer_metric.results)]
    scores = score_frame(results)
    bona = scores.loc[scores["key"] == "bonafide", "score"].to_numpy()
    spoof = scores.loc[scores["key"] == "spoof", "score"].to_numpy()
    pooled_eer, threshold = compute_eer(bona, spoof)
    rows.append({"stage": stage, "trained_on": trained_on,
                 **{a: results[a].eer if a in results else float("nan") for a in attacks}})
    if not dist.is_main():  # rank 0 writes; every rank has the same rows
        return writer.frames(rows, attacks, learned)
    write_scores(out_dir / "scores" / f"stage_{stage}.txt", scores)
    save_checkpoint(out_dir / "checkpoints" / f"stage_{stage}.pt", {
        "format": CHECKPOINT_FORMAT,
        "stage": stage,
        "trained_on": trained_on,
        "attacks": attacks,
        "config": to_dict(cfg),
        "model_preset": cfg.model.preset,
        "model_state": strategy.model.state_dict(),
        "optimizer_state": strategy.optimizer.state_dict(),
        "strategy_state": export_state(strategy),
        "eer_threshold": float(threshold),
        "pooled_eer": 100.0 * float(pooled_eer),
        "num_samples": cfg.data.num_samples,
    })
    return writer.write_stage(rows, attacks, learned, finished, time.perf_counter() - t0)


def restore_run(strategy, ckpt: dict, checkpoint: Path, completed: int,
                train_stream=None) -> None:
    """Load model, optimizer and strategy state of ``ckpt`` (read from ``checkpoint``)."""
    if "strategy_state" not in ckpt or "optimizer_state" not in ckpt:
        raise CLSpoofError(f"{checkpoint}: holds no optimizer/strategy state (written by an "
                           "older cl-spoof), so the run cannot be resumed exactly")
    load_model_state(strategy.model, ckpt.get("model_state"), checkpoint,
                     "the model of the run's config")
    # Avalanche resets the optimizer state the first time it sees it; do that now,
    # then load the saved state so training continues exactly where it stopped.
    strategy.make_optimizer(reset_optimizer_state=True)
    strategy.optimizer.load_state_dict(ckpt["optimizer_state"])
    restore_state(strategy, ckpt.get("strategy_state", {}), completed, train_stream)
    strategy.clock.train_exp_counter = completed
