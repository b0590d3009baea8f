"""The training loop shared by ``run``, ``run --resume`` and ``add-attack``.

A :class:`Trainer` is a strategy ready to learn stage after stage: it is built
from a config (model, optimizer, strategy, EER metric), learns one stage with
:meth:`Trainer.train_stage` (reseeded with :func:`~cl_spoof.infra.runtime.stage_seed`,
state synchronised across processes under torchrun), evaluates every attack
with :meth:`Trainer.evaluate`, and saves / restores everything a resumed run
needs (:meth:`Trainer.checkpoint`, :meth:`Trainer.restore`).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_spoof.config import RunConfig, config_digest, to_dict
from cl_spoof.errors import CLSpoofError, ConfigError
from cl_spoof.infra.checkpoints import CHECKPOINT_FORMAT, CheckpointError, load_model_state
from cl_spoof.infra.context import RunContext
from cl_spoof.infra.runtime import seed_everything, stage_seed
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.metrics.plugin import EERPluginMetric
from cl_spoof.models import build_detector
from cl_spoof.models.pretrained import load_initial_weights
from cl_spoof.rundir import STAGE_BASE
from cl_spoof.strategies.methods.self_distillation.plugin import SelfDistillationPlugin
from cl_spoof.strategies.registry import BuildArgs, StrategySpec, build_strategy, get_spec
from cl_spoof.strategies.state import export_state, restore_state, start_from_model
from cl_spoof.training import (
    AugmentPlugin,
    Autocast,
    BalancedBatches,
    ClassWeightedLoss,
    FeatureCachePlugin,
    FreezePlugin,
    LRSchedule,
)
from cl_spoof.workflows.events import RunEvents
from cl_spoof.workflows.loggers import check_loggers
from cl_spoof.workflows.setup import resolve


class TrainingError(CLSpoofError):
    """Training diverged (NaN/Inf loss) or could not run."""


class ProgressPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Reports mini-batch progress of training and evaluation and each epoch's mean training
    loss (``RunEvents.on_epoch``), and guards against NaN loss."""

    def __init__(self, events: RunEvents) -> None:
        super().__init__()
        self.events = events
        self._desc = ""
        self._done = 0
        self._epoch = 0
        self._loss_sum: torch.Tensor | None = None  # summed on the device: one sync an epoch
        self._loss_n = 0

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        exp = strategy.experience
        self._epoch = strategy.clock.train_exp_epochs + 1
        self._desc = (f"train {getattr(exp, 'attack', '?')} epoch "
                      f"{self._epoch}/{strategy.train_epochs}")
        self._loss_sum, self._loss_n = None, 0
        self.events.on_progress(self._desc, 0, len(strategy.dataloader))

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        loss = strategy.loss.detach()
        self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
        self._loss_n += 1
        self.events.on_progress(self._desc, strategy.clock.train_epoch_iterations,
                                len(strategy.dataloader))

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if self._loss_sum is None:
            return
        mean = float(self._loss_sum.float().item()) / self._loss_n
        self.events.on_epoch(str(getattr(strategy.experience, "attack", "?")), self._epoch,
                             strategy.train_epochs, mean)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        if not torch.isfinite(strategy.loss).all():
            exp = strategy.experience
            raise TrainingError(
                f"the loss became {strategy.loss.item()} while training on attack "
                f"{getattr(exp, 'attack', '?')} (epoch {strategy.clock.train_exp_epochs + 1}, "
                f"iteration {strategy.clock.train_epoch_iterations + 1}); lower train.lr"
            )

    def before_eval_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._desc = f"evaluate {getattr(strategy.experience, 'attack', '?')}"
        self._done = 0
        self.events.on_progress(self._desc, 0, len(strategy.dataloader))

    def after_eval_iteration(self, strategy: Any, **kwargs: Any) -> None:
        self._done += 1
        self.events.on_progress(self._desc, self._done, len(strategy.dataloader))


@dataclass
class StageResult:
    """Every attack's evaluation after one stage."""

    eers: dict[str, float]  # attack -> EER (%), NaN when not evaluable
    scores: pd.DataFrame  # utt_id, attack, key, score (each utterance once)
    pooled_eer: float  # all bona fide vs all spoofs, a fraction
    threshold: float  # the pooled EER threshold


def score_frame(results: dict) -> pd.DataFrame:
    """All scores of one stage's evaluation, bona fide once, ``utt_id attack key score``."""
    frames = [r.to_frame() for r in results.values()]
    scores = pd.concat(frames, ignore_index=True)
    return scores.drop_duplicates(subset="utt_id", keep="first").reset_index(drop=True)


def stage_epochs(cfg: RunConfig, stage: int) -> int:
    """Epochs of trained stage ``stage`` (1..N; ``train.first_epochs`` for stage 1)."""
    return (cfg.train.first_epochs or cfg.train.epochs) if stage == 1 else cfg.train.epochs


def preflight(cfg: RunConfig) -> None:
    """Build ``cfg``'s model and strategy once on the CPU, before any data is read, so that
    a bad preset, model option, layer pattern (``train.trainable``, a strategy's layers,
    self-distillation segments) or strategy setting fails at once, not after the audio
    was decoded. The random state is put back afterwards: a run is the same with it."""
    check_loggers(cfg)
    state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Avalanche: "No loggers specified" (none needed here)
        try:
            Trainer.build(cfg, RunContext.local("cpu"))
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])


@dataclass
class Trainer:
    """A strategy, its EER metric and the run they belong to."""

    cfg: RunConfig
    ctx: RunContext
    spec: StrategySpec
    strategy: SupervisedTemplate
    eer_metric: EERPluginMetric

    @classmethod
    def build(cls, cfg: RunConfig, ctx: RunContext, events: RunEvents | None = None,
              loggers: Sequence[Any] = (), extra_plugins: Sequence[SupervisedPlugin] = ()
              ) -> Trainer:
        """The fresh model, optimizer and strategy of ``cfg`` on ``ctx``'s device.

        Seeds first, so the same seed gives the same initial weights whatever the
        strategy (and on every process). Under torchrun the strategy trains
        data-parallel (``ctx.training_plugins``). ``cfg`` is resolved first (a no-op for
        a resolved config).
        """
        cfg = resolve(cfg)
        spec = get_spec(cfg.strategy.name)
        seed_everything(cfg.seed)
        model = build_detector(cfg.model, cfg.data.sample_rate)  # + self-distillation exits
        if cfg.train.compile:
            model.compile_frontend(cfg.train.compile_backend)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr,
                                     weight_decay=cfg.train.weight_decay)
        eer_metric = EERPluginMetric(gather=ctx.gather_shards)
        evaluator = EvaluationPlugin(eer_metric, accuracy_metrics(epoch=True, experience=True),
                                     loss_metrics(epoch=True, experience=True),
                                     loggers=list(loggers))
        # The distributed plugin comes first: it must unwrap the model before others copy it.
        # Only freezing precedes it, so that it wraps exactly the parameters that learn.
        plugins: list[SupervisedPlugin] = []
        if cfg.train.trainable:
            freeze = FreezePlugin(cfg.train.trainable, key="train.trainable",
                                  pretrained=cfg.model.init is not None)
            freeze.check(model)  # a pattern that matches nothing fails before training
            plugins.append(freeze)
        plugins += ctx.training_plugins(cfg.seed)
        if cfg.train.balance == "attack":  # its loader, before any plugin that reads one
            if ctx.distributed:
                raise ConfigError("train.balance: attack draws one process's batches; under "
                                  "torchrun use train.balance: none")
            plugins.append(BalancedBatches(cfg.train.workers))
        if cfg.train.augment is not None:  # before any plugin that reads the batch
            plugins.append(AugmentPlugin(cfg.train.augment, cfg.data.sample_rate,
                                         seed=ctx.rank_seed(cfg.seed)))
        if cfg.train.feature_cache:  # never with augmentation (a config error)
            cache = FeatureCachePlugin(cfg.train.trainable, cfg.train.feature_cache_mb,
                                       cfg.train.feature_cache_dir)
            cache.check(model)  # no prefix, or one that would learn: fails before training
            plugins.append(cache)
        plugins += [ProgressPlugin(events or RunEvents()), *extra_plugins]
        if cfg.train.amp == "bf16":
            plugins.append(Autocast(ctx.device))
        if cfg.train.class_weighted_loss:
            plugins.append(ClassWeightedLoss())
        sd = cfg.model.self_distillation
        if sd.enabled:
            plugins.append(SelfDistillationPlugin(sd.hard_weight, sd.soft_weight,
                                                  sd.feature_weight, sd.temperature))
        t = cfg.train
        if t.lr_schedule != "constant":
            plugins.append(LRSchedule(t.lr_schedule, t.lr, t.warmup_epochs, t.lr_final,
                                      t.lr_gamma))
        strategy = build_strategy(BuildArgs(
            cfg=cfg, model=model, optimizer=optimizer, device=ctx.device, plugins=plugins,
            evaluator=evaluator, train_mb_size=ctx.batch_share(cfg.train.batch_size),
            world_size=ctx.world_size, ctx=ctx))
        if cfg.train.balance != "none" and any(isinstance(p, ReplayPlugin)
                                               for p in strategy.plugins):
            raise ConfigError(f"train.balance: {cfg.train.balance} replaces the training "
                              f"loader, which {cfg.strategy.name} draws from its memory too; "
                              "use train.balance: none with it")
        if ctx.distributed:
            # Avalanche flags its LwF/EWC/SI/GEM/A-GEM plugins as single-process only;
            # train_stage makes their state rank 0's after every experience.
            for plugin in strategy.plugins:
                plugin.supports_distributed = True
        return cls(cfg=cfg, ctx=ctx, spec=spec, strategy=strategy, eer_metric=eer_metric)

    # ------------------------------------------------------------------ one stage

    def train_stage(self, exp: Any, stage: int, train_stream: Sequence[Any]) -> None:
        """Learn experience ``exp`` as trained stage ``stage`` (1..N).

        Reseeds with the stage seed (same data order per stage for every strategy;
        other processes get their own crops), trains ``stage_epochs`` epochs, then
        gives every process rank 0's strategy state and checks they agree.
        """
        self.strategy.train_epochs = stage_epochs(self.cfg, stage)
        seed_everything(self.ctx.rank_seed(stage_seed(self.cfg.seed, stage)))
        self.strategy.train(exp, num_workers=self.cfg.train.workers)
        self.ctx.sync_module_and_state(
            self.strategy.model, f"after stage {stage}", self.export_state,
            lambda state: self.restore_state(state, stage, train_stream))

    def evaluate(self, test_stream: Sequence[Any]) -> StageResult:
        """Score every test experience (gathered over processes) and take the EERs."""
        self.eer_metric.results.clear()
        with torch.inference_mode():  # cheaper than Avalanche's own no_grad
            self.strategy.eval(test_stream, num_workers=self.cfg.train.workers)
        results = self.eer_metric.results[max(self.eer_metric.results)]
        scores = score_frame(results)
        bona = scores.loc[scores["key"] == "bonafide", "score"].to_numpy()
        spoof = scores.loc[scores["key"] == "spoof", "score"].to_numpy()
        pooled, threshold = compute_eer(bona, spoof) if len(bona) and len(spoof) \
            else (float("nan"), float("nan"))
        return StageResult(eers={a: r.eer for a, r in results.items()}, scores=scores,
                           pooled_eer=pooled, threshold=threshold)

    # ------------------------------------------------------------------ state

    def export_state(self) -> dict:
        """Strategy state beyond model and optimizer (checkpoint entries)."""
        return export_state(self.strategy, self.spec.state_adapters())

    def restore_state(self, state: dict, completed: int,
                      train_stream: Sequence[Any] | None) -> None:
        """Put :meth:`export_state`'s entries back after ``completed`` stages."""
        restore_state(self.strategy, self.spec.state_adapters(), state, completed, train_stream)

    def start_from(self, path: str | Path) -> str:
        """Load the pretrained weights of ``path`` (``model.init``) into the model and make
        them the strategy's "previous model" (:meth:`start_from_model`); returns what the
        file was (a cl-spoof checkpoint, a state dict)."""
        kind = load_initial_weights(self.strategy.model, path, self.cfg.model.preset)
        self.start_from_model()
        return kind

    def start_from_model(self) -> None:
        """The state of a strategy about to learn its first experience after pretraining:
        DFWF's teacher and LwF's previous model become the model it holds now; the
        state that old data would give (EWC/SI importances, RegO regions, RAWM/RWM input
        spaces, replay/GEM/A-GEM memories) starts empty, as the pretraining data is not
        at hand."""
        start_from_model(self.strategy, self.spec.state_adapters())

    def checkpoint(self, stage: int, trained_on: str, attacks: Sequence[str],
                   result: StageResult) -> dict:
        """The checkpoint of stage ``stage`` (tensors and plain data only)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "stage": stage,
            "stage_base": STAGE_BASE,
            "trained_on": trained_on,
            "attacks": list(attacks),
            "config": to_dict(self.cfg),
            "config_digest": config_digest(self.cfg),
            "model_preset": self.cfg.model.preset,
            "model_state": self.strategy.model.state_dict(),
            "optimizer_state": self.strategy.optimizer.state_dict(),
            "strategy_state": self.export_state(),
            "eer_threshold": float(result.threshold),
            "pooled_eer": 100.0 * float(result.pooled_eer),
            "num_samples": self.cfg.data.num_samples,
        }

    def load_model(self, ckpt: dict, checkpoint: Path) -> None:
        """Load only the model weights of ``ckpt`` (read from ``checkpoint``)."""
        load_model_state(self.strategy.model, ckpt.get("model_state"), checkpoint,
                         "the model of the run's config")

    def restore(self, ckpt: dict, checkpoint: Path, completed: int,
                train_stream: Sequence[Any] | None = None) -> None:
        """Load model, optimizer and strategy state of ``ckpt`` to continue after
        ``completed`` trained stages exactly where the run stopped (``completed == 0``:
        ``ckpt`` is stage 0, a pretrained starting model)."""
        if "strategy_state" not in ckpt or "optimizer_state" not in ckpt:
            raise CLSpoofError(f"{checkpoint}: holds no optimizer/strategy state (written by "
                               "an older cl-spoof), so the run cannot be resumed exactly")
        self.load_model(ckpt, checkpoint)
        state = ckpt["optimizer_state"].get("state", {}) \
            if isinstance(ckpt["optimizer_state"], dict) else {}
        if any(isinstance(t, torch.Tensor) and t.is_floating_point()
               and not bool(torch.isfinite(t).all())
               for entry in state.values() if isinstance(entry, dict) for t in entry.values()):
            raise CheckpointError(f"{checkpoint}: damaged checkpoint: the optimizer state holds "
                                  "NaN or Inf; use an earlier stage's checkpoint or train again")
        # Avalanche resets the optimizer state the first time it sees it; do that now,
        # then load the saved state so training continues exactly where it stopped.
        self.strategy.make_optimizer(reset_optimizer_state=True)
        self.strategy.optimizer.load_state_dict(ckpt["optimizer_state"])
        self.restore_state(ckpt.get("strategy_state", {}), completed, train_stream)
        if completed == 0:  # stage 0: the pretrained starting model, as the run began
            self.start_from_model()
        self.strategy.clock.train_exp_counter = completed

    def plugin_warnings(self) -> dict[int, list[str]]:
        """Warnings each plugin recorded so far (e.g. DFWF: "no bona fide"), by plugin id."""
        return {id(p): list(getattr(p, "warnings", [])) for p in self.strategy.plugins}
