"""Every continual-learning strategy cl-spoof can run, one :class:`StrategySpec` each.

A spec holds everything about a strategy in one place: its name and one-line
summary (for ``--help`` and the README table), whether it keeps old audio, its
hyper-parameters (config keys ``strategy.<key>`` with defaults and range checks),
the builder that makes the Avalanche strategy, and the adapters that put its
state into a checkpoint and back (resume, ``add-attack``, torchrun sync).
**Adding a strategy is one new entry in** :data:`STRATEGIES`.

This module stays light: Avalanche and the plugins are imported inside the
builders, so reading a config does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cl_spoof.errors import ConfigError
from cl_spoof.labels import BONAFIDE_TARGET

if TYPE_CHECKING:
    import torch
    from avalanche.core import SupervisedPlugin
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.config import RunConfig
    from cl_spoof.infra.context import RunContext
    from cl_spoof.strategies.state import StateAdapter

__all__ = ["STRATEGIES", "BuildArgs", "HyperParameter", "Rule", "StrategySpec", "build_strategy",
           "check_strategy_name", "get_spec", "hyperparameters", "markdown_table",
           "resolve_strategy"]


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
    :func:`resolve_strategy`).
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
        """The adapters of this strategy's state (imports Avalanche)."""
        return self.state()


# --------------------------------------------------------------------------- checks


def _non_negative(v: Any) -> bool:
    return v >= 0


def _positive(v: Any) -> bool:
    return v > 0


def _at_least_one(v: Any) -> bool:
    return v >= 1


def _unit(v: Any) -> bool:
    return 0 <= v <= 1


NON_NEGATIVE = Rule("must not be negative", _non_negative)
POSITIVE = Rule("must be positive", _positive)
AT_LEAST_ONE = Rule("must be at least 1", _at_least_one)

# Shared by dfwf and dfwf+replay.
DFWF_PARAMS = (
    HyperParameter("kd_weight", 1.0, "weight λ_kd of the distillation term", NON_NEGATIVE),
    HyperParameter("kd_temperature", 2.0, "softmax temperature T of the distillation (× T²)",
                   POSITIVE),
    HyperParameter("psa_weight", 1.0, "weight λ_psa of positive sample alignment",
                   NON_NEGATIVE),
    HyperParameter("psa_distance", "cosine", "distance of aligned bona fide features",
                   Rule("must be 'cosine' or 'l2'", lambda v: v in ("cosine", "l2"))),
    HyperParameter("psa_layers", ("embedding",), "model layers whose outputs are aligned",
                   Rule("must name at least one layer", lambda v: len(v) >= 1)),
)
def _one_of(*values: str) -> Rule:
    return Rule("must be " + " or ".join(repr(v) for v in values), lambda v: v in values)


NAMES_RULE = Rule("must name at least one layer", lambda v: len(v) >= 1)

# Shared by rawm and rwm (orthogonal weight modification).
OWM_PARAMS = (
    HyperParameter("owm_layers", ("*",), "module-name patterns of the layers whose weights "
                   "are projected (nn.Linear, nn.Conv1d, nn.GRU input weights)", NAMES_RULE),
    HyperParameter("owm_alpha", 1e-3, "ridge α of the projector, relative to the mean input "
                   "energy (smaller: stricter)", POSITIVE),
    HyperParameter("owm_target", "update", "what is projected: the optimizer's update, or "
                   "the gradient (as the papers, which assume SGD)",
                   _one_of("update", "gradient")),
    HyperParameter("owm_beta_max", 10.0, "upper clamp of β, the weight of the old input space",
                   NON_NEGATIVE),
)
REGO_PARAMS = (
    HyperParameter("rego_layers", ("*",), "parameter/module-name patterns RegO acts on",
                   NAMES_RULE),
    HyperParameter("rego_quantile", 0.75, "entries above this Fisher quantile of their "
                   "tensor are important", Rule("must be in [0, 1)", lambda v: 0 <= v < 1)),
    HyperParameter("rego_release", 0.1, "Ebbinghaus threshold below which old importance "
                   "is released", NON_NEGATIVE),
    HyperParameter("rego_reference", "previous_step", "reference gradient: the previous "
                   "step's, or the mean of the last finished experience",
                   _one_of("previous_step", "old_task")),
)
MEMORY = HyperParameter("memory_size", 200, "clips kept in the replay memory (all experiences)",
                        AT_LEAST_ONE)


# --------------------------------------------------------------------------- builders
# Each imports what it needs, so this module does not import Avalanche.


def _naive(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import Naive

    return Naive(**a.common())


def _cumulative(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import Cumulative

    return Cumulative(**a.common())


def _lwf(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import LwF

    s = a.cfg.strategy
    return LwF(alpha=s.lwf_alpha, temperature=s.lwf_temperature, **a.common())


def _ewc(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import EWC

    s = a.cfg.strategy
    return EWC(ewc_lambda=s.ewc_lambda, mode="online", decay_factor=s.ewc_decay, **a.common())


def _si(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import SynapticIntelligence

    return SynapticIntelligence(si_lambda=a.cfg.strategy.si_lambda, **a.common())


def _replay(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import Replay

    return Replay(mem_size=a.cfg.strategy.memory_size, **a.common())


def _gem(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import GEM

    s = a.cfg.strategy
    return GEM(patterns_per_exp=s.gem_patterns_per_exp, memory_strength=s.gem_memory_strength,
               **a.common())


def _agem(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import AGEM

    s = a.cfg.strategy
    # Like the batch, the memory sample is global: each process draws its share.
    return AGEM(patterns_per_exp=s.agem_patterns_per_exp,
                sample_size=max(1, s.agem_sample_size // a.world_size), **a.common())


def _dfwf_args(a: BuildArgs) -> dict[str, Any]:
    from cl_spoof.strategies.regularization import resolve_layers

    s = a.cfg.strategy
    resolve_layers(a.model, s.psa_layers, "strategy.psa_layers")  # fail before training
    return dict(kd_weight=s.kd_weight, temperature=s.kd_temperature, psa_weight=s.psa_weight,
                distance=s.psa_distance, layers=s.psa_layers, bonafide_class=BONAFIDE_TARGET)


def _dfwf(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.templates import DFWF

    return DFWF(**_dfwf_args(a), **a.common())


def _dfwf_replay(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import Replay

    from cl_spoof.strategies.plugins.dfwf import DFWFPlugin

    return Replay(mem_size=a.cfg.strategy.memory_size,
                  **a.common([DFWFPlugin(**_dfwf_args(a))]))


def _owm_args(a: BuildArgs) -> dict[str, Any]:
    from cl_spoof.strategies.layers import weight_layers

    s = a.cfg.strategy
    weight_layers(a.model, s.owm_layers, "strategy.owm_layers")  # fail before training
    return dict(layers=s.owm_layers, alpha=s.owm_alpha, target=s.owm_target,
                beta_max=s.owm_beta_max, bonafide_class=BONAFIDE_TARGET, ctx=a.ctx)


def _rawm(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.templates import RAWM

    return RAWM(method_kwargs={**_owm_args(a), "beta": a.cfg.strategy.rawm_beta},
                **a.common())


def _rwm(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.templates import RWM

    return RWM(method_kwargs={**_owm_args(a),
                              "compact_class": a.cfg.strategy.rwm_compact_class},
               **a.common())


def _rego(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.layers import select
    from cl_spoof.strategies.templates import RegO

    s = a.cfg.strategy
    select([n for n, _ in a.model.named_parameters()], s.rego_layers, "strategy.rego_layers")
    return RegO(method_kwargs=dict(layers=s.rego_layers, quantile=s.rego_quantile,
                                   release=s.rego_release, reference=s.rego_reference,
                                   bonafide_class=BONAFIDE_TARGET, ctx=a.ctx),
                **a.common())


# --------------------------------------------------------------------------- state


def _state(*names: str) -> Callable[[], tuple[StateAdapter, ...]]:
    """The adapters named ``names`` in :mod:`cl_spoof.strategies.state` (imported late)."""

    def adapters() -> tuple[StateAdapter, ...]:
        from cl_spoof.strategies import state

        return tuple(getattr(state, n) for n in names)

    return adapters


# --------------------------------------------------------------------------- the registry


STRATEGIES: dict[str, StrategySpec] = {s.name: s for s in (
    StrategySpec("naive", "fine-tuning on each new attack (the lower bound)", "no", _naive),
    StrategySpec("joint", "one model trained once on all attacks (the upper bound)",
                 "all of it", _naive, joint=True),
    StrategySpec("cumulative", "retrain on all data seen so far at every stage", "all of it",
                 _cumulative, state=_state("CUMULATIVE"), needs_own_run=True),
    StrategySpec("lwf", "Learning without Forgetting (Avalanche)", "no", _lwf,
                 (HyperParameter("lwf_alpha", 1.0, "weight of the distillation", NON_NEGATIVE),
                  HyperParameter("lwf_temperature", 2.0, "softmax temperature", POSITIVE)),
                 state=_state("LWF")),
    StrategySpec("ewc", "online Elastic Weight Consolidation (Avalanche)", "no", _ewc,
                 (HyperParameter("ewc_lambda", 100.0, "weight of the penalty", NON_NEGATIVE),
                  HyperParameter("ewc_decay", 0.5, "decay of older importances",
                                 Rule("must be between 0 and 1", _unit))),
                 state=_state("EWC"), needs_own_run=True),
    StrategySpec("si", "Synaptic Intelligence (Avalanche)", "no", _si,
                 (HyperParameter("si_lambda", 1.0, "weight of the penalty", NON_NEGATIVE),),
                 state=_state("SI"), needs_own_run=True),
    StrategySpec("replay", "experience replay (Avalanche)", "a memory of clips", _replay,
                 (MEMORY,), state=_state("REPLAY"), needs_own_run=True),
    StrategySpec("gem", "Gradient Episodic Memory (Avalanche; QP by quadprog)",
                 "a memory of clips", _gem,
                 (HyperParameter("gem_patterns_per_exp", 64, "clips kept per experience",
                                 AT_LEAST_ONE),
                  HyperParameter("gem_memory_strength", 0.5, "margin of the QP", NON_NEGATIVE)),
                 state=_state("GEM"), needs_own_run=True),
    StrategySpec("agem", "Averaged GEM (Avalanche)", "a memory of clips", _agem,
                 (HyperParameter("agem_patterns_per_exp", 64, "clips kept per experience",
                                 AT_LEAST_ONE),
                  HyperParameter("agem_sample_size", 64, "memory clips per step (global)",
                                 AT_LEAST_ONE)),
                 state=_state("AGEM"), needs_own_run=True),
    StrategySpec("dfwf", "Detecting Fake Without Forgetting: fine-tuning + DFWFPlugin", "no",
                 _dfwf, DFWF_PARAMS, state=_state("DFWF")),
    StrategySpec("dfwf+replay", "Replay + DFWFPlugin", "a memory of clips", _dfwf_replay,
                 (*DFWF_PARAMS, MEMORY), state=_state("DFWF", "REPLAY"), needs_own_run=True),
    StrategySpec("rawm", "Regularized Adaptive Weight Modification (Zhang et al., ICML 2023): "
                 "updates projected off the old input space, β = genuine share", "no", _rawm,
                 (*OWM_PARAMS, HyperParameter("rawm_beta", "share", "β from the batch: "
                                              "genuine share, or (n_gen+1)/(n_fake+1)",
                                              _one_of("share", "ratio"))),
                 state=_state("RAWM"), needs_own_run=True),
    StrategySpec("rwm", "Radian Weight Modification (Zhang et al., AAAI 2024): as RAWM, "
                 "β = tan of a radian set by the compact and the spread class", "no", _rwm,
                 (*OWM_PARAMS, HyperParameter("rwm_compact_class", "bonafide", "the class "
                                              "whose updates may move in the old space",
                                              _one_of("bonafide", "spoof", "auto"))),
                 state=_state("RWM"), needs_own_run=True),
    StrategySpec("rego", "Region-Based Optimization (Chen et al., AAAI 2025): per-entry "
                 "Fisher regions, parallel / orthogonal / mixed updates", "no", _rego,
                 REGO_PARAMS, state=_state("REGO"), needs_own_run=True),
)}


def check_strategy_name(name: str) -> str:
    """Return ``name`` if registered, else raise :class:`ConfigError` listing the names."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}")
    return name


def get_spec(name: str) -> StrategySpec:
    """The spec of strategy ``name`` (:class:`ConfigError` listing the names if unknown)."""
    return STRATEGIES[check_strategy_name(name)]


def hyperparameters() -> dict[str, HyperParameter]:
    """Every declared hyper-parameter, by key (a key shared by strategies is declared once)."""
    found: dict[str, HyperParameter] = {}
    for spec in STRATEGIES.values():
        for hp in spec.hyperparameters:
            other = found.setdefault(hp.name, hp)
            if other != hp:
                raise AssertionError(f"strategy.{hp.name} is declared twice, differently")
    return found


def build_strategy(args: BuildArgs) -> SupervisedTemplate:
    """The Avalanche strategy named by ``args.cfg.strategy.name``."""
    return get_spec(args.cfg.strategy.name).build(args)


def _default_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return str(value)


def markdown_table() -> str:
    """The README's strategy table, generated from :data:`STRATEGIES`."""
    lines = ["| name | what | keeps old audio | hyper-parameters (defaults) |",
             "|---|---|---|---|"]
    for spec in STRATEGIES.values():
        params = ", ".join(f"`{hp.name}` {_default_text(hp.default)}"
                           for hp in spec.hyperparameters) or "—"
        lines.append(f"| `{spec.name}` | {spec.summary} | {spec.keeps_old_audio} | {params} |")
    return "\n".join(lines) + "\n"


def resolve_strategy(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its strategy section checked against the registry and completed.

    The name must be registered, every other key of ``strategy:`` a declared
    hyper-parameter of the right type (converted like any config value) that obeys
    its rule; every declared hyper-parameter is then present, with its default where
    the config gives none, in declaration order. Idempotent: a resolved config comes
    back as it is. :class:`ConfigError` names the key.
    """
    from cl_spoof.config import StrategyConfig, check_value

    s = cfg.strategy
    check_strategy_name(s.name)
    declared = hyperparameters()
    unknown = [k for k in s.hyperparameters if k not in declared]
    if unknown:
        raise ConfigError(f"unknown config key 'strategy.{unknown[0]}' (valid keys here: "
                          f"{', '.join(['name', *sorted(declared)])})")
    values = {k: hp.default for k, hp in declared.items()}
    for key, value in s.hyperparameters.items():
        values[key] = check_value(f"strategy.{key}", value, declared[key].type)
    for key, hp in declared.items():
        hp.check(values[key])
    given = s.hyperparameters
    if list(values) == list(given) and all(type(v) is type(given[k]) and v == given[k]
                                           for k, v in values.items()):
        return cfg
    return replace(cfg, strategy=StrategyConfig(name=s.name, hyperparameters=values))
