"""What a strategy declares: :class:`StrategySpec`, its hyper-parameters and their rules.

A spec holds everything about a strategy in one place: its name and one-line
summary (for ``--help`` and the README table), whether it keeps old audio, its
hyper-parameters (config keys ``strategy.<key>`` with defaults and range checks),
the builder that makes the Avalanche strategy, and the adapters that put its
state into a checkpoint and back (resume, ``add-attack``, torchrun sync). Each
method's module under :mod:`cl_spoof.strategies.methods` declares its specs with
these types; :mod:`cl_spoof.strategies.registry` collects them.

This module stays light (no torch, no Avalanche at import): the config reads the
hyper-parameters through the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cl_spoof.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from avalanche.core import SupervisedPlugin
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.config import RunConfig
    from cl_spoof.infra.context import RunContext
    from cl_spoof.strategies.state import StateAdapter

__all__ = ["AT_LEAST_ONE", "NAMES_RULE", "NON_NEGATIVE", "POSITIVE", "BuildArgs",
           "HyperParameter", "Rule", "StrategySpec", "one_of"]


@dataclass(frozen=True)
class Rule:
    """What values of a hyper-parameter must satisfy, and how an error says it."""

    text: str  # completes "strategy.<name> ...", e.g. "must not be negative"
    valid: Callable[[Any], bool]


@dataclass(frozen=True)
class HyperParameter:
    """One config key ``strategy.<name>``: default, meaning, and the rule values obey."""

    name: str
    default: Any
    help: str
    rule: Rule | None = None

    @property
    def type(self) -> Any:
        """The value type, taken from the default (tuples hold strings)."""
        return tuple[str, ...] if isinstance(self.default, tuple) else type(self.default)

    def check(self, value: Any) -> None:
        """Raise :class:`ConfigError` naming the key when ``value`` breaks the rule."""
        if self.rule is not None and not self.rule.valid(value):
            raise ConfigError(f"strategy.{self.name} {self.rule.text}, got {value!r}")


@dataclass(frozen=True)
class BuildArgs:
    """What every builder receives: the run's config and the pieces common to all strategies.

    ``plugins`` are cl-spoof's own (progress, class weights, autocast, distributed
    training); a builder adds its method's plugin after them. ``train_mb_size`` is this
    process's share of ``train.batch_size``; ``world_size`` the number of processes;
    ``ctx`` the run's context, for methods whose per-step statistics span the processes.
    ``cfg`` is the run's resolved :class:`cl_spoof.config.RunConfig` (see
    :func:`cl_spoof.strategies.registry.resolve_strategy`).
    """

    cfg: RunConfig
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    plugins: Sequence[SupervisedPlugin]
    evaluator: Any
    train_mb_size: int
    world_size: int = 1
    ctx: RunContext | None = None

    def common(self, extra_plugins: Sequence[SupervisedPlugin] = ()) -> dict[str, Any]:
        """Keyword arguments shared by every Avalanche strategy constructor."""
        from torch import nn

        return dict(model=self.model, optimizer=self.optimizer, criterion=nn.CrossEntropyLoss(),
                    train_mb_size=self.train_mb_size, eval_mb_size=self.cfg.train.eval_batch_size,
                    device=self.device, plugins=[*self.plugins, *extra_plugins],
                    evaluator=self.evaluator, train_epochs=self.cfg.train.epochs)


@dataclass(frozen=True)
class StrategySpec:
    """A strategy: how to build it, its hyper-parameters, how to save and restore its state."""

    name: str
    summary: str
    keeps_old_audio: str  # "no", "a memory of clips", "all of it"
    build: Callable[[BuildArgs], SupervisedTemplate]
    hyperparameters: tuple[HyperParameter, ...] = ()
    # State beyond model and optimizer that a resumed run needs (checkpoint entries).
    state: Callable[[], tuple[StateAdapter, ...]] = field(default=lambda: ())
    # Whether that state can only come from a run of this same strategy (EWC importances,
    # memories, ...); False when it is rebuilt from the model (naive, DFWF, LwF), so
    # ``add-attack`` may switch any run to it.
    needs_own_run: bool = False
    joint: bool = False  # trains once on every attack (the upper bound), not per attack

    def state_adapters(self) -> tuple[StateAdapter, ...]:
        """The adapters of this strategy's state (may import Avalanche)."""
        return self.state()


# --------------------------------------------------------------------------- rules


def _non_negative(v: Any) -> bool:
    return v >= 0


def _positive(v: Any) -> bool:
    return v > 0


def _at_least_one(v: Any) -> bool:
    return v >= 1


NON_NEGATIVE = Rule("must not be negative", _non_negative)
POSITIVE = Rule("must be positive", _positive)
AT_LEAST_ONE = Rule("must be at least 1", _at_least_one)
#: For layer-name patterns.
NAMES_RULE = Rule("must name at least one layer", lambda v: len(v) >= 1)


def one_of(*values: str) -> Rule:
    """A value among ``values`` (the error lists them)."""
    return Rule("must be " + " or ".join(repr(v) for v in values), lambda v: v in values)
