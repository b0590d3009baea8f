"""DFWF ("Detecting Fake Without Forgetting", Ma et al., Interspeech 2021).

- :mod:`.regularization`: the losses (knowledge distillation, positive sample
  alignment) and the frozen teacher, for any classifier;
- :mod:`.plugin`: ``DFWFPlugin`` for any Avalanche strategy, and its checkpoint state;
- :mod:`.strategy`: the ``DFWF`` strategy class (fine-tuning plus the plugin).

This module holds the registry entries ``dfwf`` and ``dfwf+replay``; it stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cl_spoof.labels import BONAFIDE_TARGET
from cl_spoof.strategies.methods.baselines import MEMORY, REPLAY_STATE
from cl_spoof.strategies.spec import (
    NON_NEGATIVE,
    POSITIVE,
    BuildArgs,
    HyperParameter,
    Rule,
    StrategySpec,
)

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

    from cl_spoof.strategies.state import StateAdapter

__all__ = ["DFWF_PARAMS", "SPECS"]

#: Shared by dfwf and dfwf+replay.
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


def _dfwf_args(a: BuildArgs) -> dict[str, Any]:
    from cl_spoof.strategies.methods.dfwf.regularization import resolve_layers

    s = a.cfg.strategy
    resolve_layers(a.model, s.psa_layers, "strategy.psa_layers")  # fail before training
    return dict(kd_weight=s.kd_weight, temperature=s.kd_temperature, psa_weight=s.psa_weight,
                distance=s.psa_distance, layers=s.psa_layers, bonafide_class=BONAFIDE_TARGET)


def _dfwf(a: BuildArgs) -> SupervisedTemplate:
    from cl_spoof.strategies.methods.dfwf.strategy import DFWF

    return DFWF(**_dfwf_args(a), **a.common())


def _dfwf_replay(a: BuildArgs) -> SupervisedTemplate:
    from avalanche.training import Replay

    from cl_spoof.strategies.methods.dfwf.plugin import DFWFPlugin

    return Replay(mem_size=a.cfg.strategy.memory_size,
                  **a.common([DFWFPlugin(**_dfwf_args(a))]))


def _state() -> tuple[StateAdapter, ...]:
    from cl_spoof.strategies.methods.dfwf.plugin import STATE

    return (STATE,)


def _state_with_replay() -> tuple[StateAdapter, ...]:
    return (*_state(), REPLAY_STATE)


SPECS = (
    StrategySpec("dfwf", "Detecting Fake Without Forgetting: fine-tuning + DFWFPlugin", "no",
                 _dfwf, DFWF_PARAMS, state=_state),
    StrategySpec("dfwf+replay", "Replay + DFWFPlugin", "a memory of clips", _dfwf_replay,
                 (*DFWF_PARAMS, MEMORY), state=_state_with_replay, needs_own_run=True),
)
