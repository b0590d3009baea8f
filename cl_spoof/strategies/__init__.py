"""Continual-learning strategies by name, built from Avalanche's own strategies.

``make_strategy`` maps a :class:`~cl_spoof.config.StrategyConfig` to an
Avalanche strategy; DFWF is a plugin (:mod:`cl_spoof.strategies.dfwf`) added to
Naive (``dfwf``) or Replay (``dfwf+replay``). ``joint`` is Naive trained on a
single experience that holds every attack (the runner builds that benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from avalanche.core import SupervisedPlugin
from avalanche.training import (
    AGEM,
    EWC,
    GEM,
    Cumulative,
    LwF,
    Naive,
    Replay,
    SynapticIntelligence,
)
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_spoof.benchmark import class_weights
from cl_spoof.config import RunConfig
from cl_spoof.distributed import per_rank_batch, world_size
from cl_spoof.errors import ConfigError

STRATEGIES: tuple[str, ...] = ("naive", "joint", "cumulative", "lwf", "ewc", "si", "replay",
                               "gem", "agem", "dfwf", "dfwf+replay")


def check_strategy_name(name: str) -> str:
    """Return ``name`` if known, else raise :class:`ConfigError` listing the valid names."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return name


class ClassWeightedLoss(SupervisedPlugin, supports_distributed=True):
    """Class-weighted cross-entropy, weights from each experience's training counts.

    Set in ``before_training_exp`` (after dataset adaptation, so Cumulative's
    growing dataset counts). Bona fide is usually the minority class.
    """

    def before_training_exp(self, strategy: SupervisedTemplate, **kwargs) -> None:
        weights = class_weights(list(strategy.adapted_dataset.targets))
        strategy._criterion = nn.CrossEntropyLoss(weight=weights.to(strategy.device))


class Autocast(SupervisedPlugin, supports_distributed=True):
    """bfloat16 autocast around every forward pass (training and evaluation).

    The logits are cast back to float32 so losses and metrics see full precision.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device_type = device.type
        self._ctx = None

    def _enter(self) -> None:
        self._ctx = torch.autocast(self.device_type, dtype=torch.bfloat16)
        self._ctx.__enter__()

    def _exit(self, strategy: SupervisedTemplate) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        strategy.mb_output = strategy.mb_output.float()

    def before_forward(self, strategy: SupervisedTemplate, **kwargs) -> None:
        self._enter()

    def after_forward(self, strategy: SupervisedTemplate, **kwargs) -> None:
        self._exit(strategy)

    def before_eval_forward(self, strategy: SupervisedTemplate, **kwargs) -> None:
        self._enter()

    def after_eval_forward(self, strategy: SupervisedTemplate, **kwargs) -> None:
        self._exit(strategy)


def make_strategy(
    cfg: RunConfig,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    evaluator,
    plugins: Sequence[SupervisedPlugin] = (),
) -> SupervisedTemplate:
    """The Avalanche strategy named by ``cfg.strategy.name``, wired with our plugins."""
    s = cfg.strategy
    name = check_strategy_name(s.name)
    plugins = list(plugins)
    if cfg.train.amp == "bf16":
        plugins.append(Autocast(device))
    if cfg.train.class_weighted_loss:
        plugins.append(ClassWeightedLoss())
    if name in ("dfwf", "dfwf+replay"):
        from cl_spoof.strategies.dfwf import DFWFPlugin

        plugins.append(DFWFPlugin(kd_weight=s.kd_weight, temperature=s.kd_temperature,
                                  psa_weight=s.psa_weight, distance=s.psa_distance,
                                  layers=s.psa_layers))
    common = dict(
        model=model,
        optimizer=optimizer,
        criterion=nn.CrossEntropyLoss(),
        train_mb_size=per_rank_batch(cfg.train.batch_size),  # this process's share
        eval_mb_size=cfg.train.eval_batch_size,
        device=device,
        plugins=plugins,
        evaluator=evaluator,
    )
    # Epoch count is set per experience by the runner (first_epochs), start with the default.
    common["train_epochs"] = cfg.train.epochs
    if name in ("naive", "joint", "dfwf"):
        return Naive(**common)
    if name == "cumulative":
        return Cumulative(**common)
    if name == "lwf":
        return LwF(alpha=s.lwf_alpha, temperature=s.lwf_temperature, **common)
    if name == "ewc":
        return EWC(ewc_lambda=s.ewc_lambda, mode="online", decay_factor=s.ewc_decay, **common)
    if name == "si":
        return SynapticIntelligence(si_lambda=s.si_lambda, **common)
    if name in ("replay", "dfwf+replay"):
        return Replay(mem_size=s.memory_size, **common)
    if name == "gem":
        return GEM(patterns_per_exp=s.gem_patterns_per_exp,
                   memory_strength=s.gem_memory_strength, **common)
    if name == "agem":
        # Like the batch, the memory sample is global: each process draws its share.
        return AGEM(patterns_per_exp=s.agem_patterns_per_exp,
                    sample_size=max(1, s.agem_sample_size // world_size()), **common)
    raise AssertionError(name)  # pragma: no cover - check_strategy_name covers it
