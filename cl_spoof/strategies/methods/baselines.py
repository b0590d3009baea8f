"""Avalanche's own strategies: the bounds (naive, joint, cumulative), the regularisers
(LwF, EWC, SI) and the memories (replay, GEM, A-GEM), with the state each needs to resume.

Light at import: the builders and the state adapters import Avalanche when they run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cl_spoof.errors import CLSpoofError
from cl_spoof.strategies.spec import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    BuildArgs,
    HyperParameter,
    Rule,
    StrategySpec,
)
from cl_spoof.strategies.state import StateAdapter, find_plugin, need_stream

if TYPE_CHECKING:
    import torch
    from avalanche.training.templates import SupervisedTemplate

__all__ = ["AGEM_STATE", "CUMULATIVE_STATE", "EWC_STATE", "GEM_STATE", "LWF_STATE", "MEMORY",
           "REPLAY_STATE", "SI_STATE", "SPECS"]


def _unit(v: Any) -> bool:
    return 0 <= v <= 1


#: The replay memory's size (shared with ``dfwf+replay``).
MEMORY = HyperParameter("memory_size", 200, "clips kept in the replay memory (all experiences)",
                        AT_LEAST_ONE)


# --------------------------------------------------------------------------- builders


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


# --------------------------------------------------------------------------- state


def _tensor(value: Any) -> torch.Tensor:
    """The tensor inside an Avalanche ``ParamData`` (or the tensor itself)."""
    from avalanche.training.utils import ParamData

    return (value.data if isinstance(value, ParamData) else value).detach().clone()


def _cumulative_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                        train_stream: Sequence[Any] | None) -> None:
    from avalanche.benchmarks.utils import concat_datasets
    from avalanche.training import Cumulative

    if isinstance(strategy, Cumulative) and completed > 0:
        stream = need_stream(train_stream, "cumulative training")
        strategy.dataset = concat_datasets([stream[k].dataset for k in range(completed)])


CUMULATIVE_STATE = StateAdapter("cumulative", lambda strategy: {}, _cumulative_restore)


def _lwf_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    import copy

    from avalanche.training.plugins import LwFPlugin

    lwf = find_plugin(strategy, LwFPlugin)
    if completed > 0:  # its previous model is a copy of the model, taken in training mode
        strategy.model.train()
        lwf.lwf.prev_model = copy.deepcopy(strategy.model)
        lwf.lwf.expcount = completed
        lwf.lwf.prev_classes_by_task[0] = {0, 1}


def _lwf_start(strategy: SupervisedTemplate) -> None:
    """The previous model is the model now (a pretrained starting model)."""
    _lwf_restore(strategy, {}, 1, None)


LWF_STATE = StateAdapter("lwf", lambda strategy: {}, _lwf_restore, _lwf_start)


def _ewc_export(strategy: SupervisedTemplate) -> dict:
    from avalanche.training.plugins import EWCPlugin

    ewc = find_plugin(strategy, EWCPlugin)
    if not ewc.importances:
        return {}
    t = max(ewc.importances)
    return {"ewc_t": int(t),
            "ewc_importances": {k: v.data.clone() for k, v in ewc.importances[t].items()},
            "ewc_saved_params": {k: v.data.clone() for k, v in ewc.saved_params[t].items()}}


def _ewc_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    from avalanche.training.plugins import EWCPlugin
    from avalanche.training.utils import ParamData

    ewc = find_plugin(strategy, EWCPlugin)
    if "ewc_t" in state:
        t = int(state["ewc_t"])
        ewc.importances[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                              for k, v in state["ewc_importances"].items()}
        ewc.saved_params[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                               for k, v in state["ewc_saved_params"].items()}


EWC_STATE = StateAdapter("ewc", _ewc_export, _ewc_restore)


def _si_export(strategy: SupervisedTemplate) -> dict:
    from avalanche.training.plugins import SynapticIntelligencePlugin

    si = find_plugin(strategy, SynapticIntelligencePlugin)
    if not si.ewc_data[0]:
        return {}
    return {"si_ewc": [{k: _tensor(v) for k, v in d.items()} for d in si.ewc_data],
            "si_syn": {key: {k: _tensor(v) for k, v in d.items()}
                       for key, d in si.syn_data.items()}}


def _si_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                train_stream: Sequence[Any] | None) -> None:
    from avalanche.training.plugins import SynapticIntelligencePlugin
    from avalanche.training.utils import ParamData

    si = find_plugin(strategy, SynapticIntelligencePlugin)
    if "si_ewc" in state:
        for target, saved in zip(si.ewc_data, state["si_ewc"], strict=True):
            target.update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})
        for key, saved in state["si_syn"].items():
            si.syn_data[key].update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})


SI_STATE = StateAdapter("si", _si_export, _si_restore)


def _gem_export(strategy: SupervisedTemplate) -> dict:
    from avalanche.training.plugins import GEMPlugin

    gem = find_plugin(strategy, GEMPlugin)
    if not gem.memory_x:
        return {}
    return {"gem_memory": {name: {str(t): v.clone() for t, v in getattr(gem, name).items()}
                           for name in ("memory_x", "memory_y", "memory_tid")}}


def _gem_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    from avalanche.training.plugins import GEMPlugin

    gem = find_plugin(strategy, GEMPlugin)
    if "gem_memory" in state:
        for name, saved in state["gem_memory"].items():
            getattr(gem, name).update({int(t): v for t, v in saved.items()})


GEM_STATE = StateAdapter("gem", _gem_export, _gem_restore)


def _agem_export(strategy: SupervisedTemplate) -> dict:
    import torch
    from avalanche.training.plugins import AGEMPlugin

    agem = find_plugin(strategy, AGEMPlugin)
    if not agem.buffers:
        return {}
    # One buffer per experience, in order: buffer k holds rows of experience k.
    return {"agem_buffers": [torch.tensor([int(r) for r in b.rows], dtype=torch.long)
                             for b in agem.buffers]}


def _agem_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                  train_stream: Sequence[Any] | None) -> None:
    from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader
    from avalanche.training.plugins import AGEMPlugin

    agem = find_plugin(strategy, AGEMPlugin)
    if "agem_buffers" not in state:
        return
    stream = need_stream(train_stream, "agem")
    agem.buffers = []
    for k, rows in enumerate(state["agem_buffers"]):
        dataset = stream[k].dataset
        position = {int(r): i for i, r in enumerate(dataset.rows)}
        agem.buffers.append(dataset.subset([position[int(r)] for r in rows]))
    # As A-GEM's update_memory does after each experience (num_workers=0).
    agem.buffer_dataloader = GroupBalancedInfiniteDataLoader(
        agem.buffers, batch_size=agem.sample_size // len(agem.buffers), num_workers=0,
        pin_memory=False, persistent_workers=False)
    agem.buffer_dliter = iter(agem.buffer_dataloader)


AGEM_STATE = StateAdapter("agem", _agem_export, _agem_restore)


def _replay_export(strategy: SupervisedTemplate) -> dict:
    import torch
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.storage_policy import ExperienceBalancedBuffer

    storage = find_plugin(strategy, ReplayPlugin).storage_policy
    if not isinstance(storage, ExperienceBalancedBuffer):
        raise CLSpoofError(f"replay memory of type {type(storage).__name__} cannot be saved")
    return {"replay_num_exps": int(storage._num_exps),
            "replay_groups": {
                str(g): {"rows": torch.tensor([int(r) for r in b.buffer.rows], dtype=torch.long),
                         "weights": b._buffer_weights.clone(), "max_size": int(b.max_size)}
                for g, b in storage.buffer_groups.items()}}


def _replay_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                    train_stream: Sequence[Any] | None) -> None:
    from avalanche.training.plugins import ReplayPlugin
    from avalanche.training.storage_policy import ReservoirSamplingBuffer

    if "replay_groups" not in state:
        return
    stream = need_stream(train_stream, "replay")
    storage = find_plugin(strategy, ReplayPlugin).storage_policy
    for g, group in state["replay_groups"].items():
        dataset = stream[int(g)].dataset
        position = {int(r): i for i, r in enumerate(dataset.rows)}
        buffer = ReservoirSamplingBuffer(int(group["max_size"]))
        buffer.buffer = dataset.subset([position[int(r)] for r in group["rows"]])
        buffer._buffer_weights = group["weights"].clone()
        storage.buffer_groups[int(g)] = buffer
    storage._num_exps = int(state["replay_num_exps"])


#: Also the memory of ``dfwf+replay``.
REPLAY_STATE = StateAdapter("replay", _replay_export, _replay_restore)


# --------------------------------------------------------------------------- the specs


SPECS = (
    StrategySpec("naive", "fine-tuning on each new attack (the lower bound)", "no", _naive),
    StrategySpec("joint", "one model trained once on all attacks (the upper bound)",
                 "all of it", _naive, joint=True),
    StrategySpec("cumulative", "retrain on all data seen so far at every stage", "all of it",
                 _cumulative, state=lambda: (CUMULATIVE_STATE,), needs_own_run=True),
    StrategySpec("lwf", "Learning without Forgetting (Avalanche)", "no", _lwf,
                 (HyperParameter("lwf_alpha", 1.0, "weight of the distillation", NON_NEGATIVE),
                  HyperParameter("lwf_temperature", 2.0, "softmax temperature", POSITIVE)),
                 state=lambda: (LWF_STATE,)),
    StrategySpec("ewc", "online Elastic Weight Consolidation (Avalanche)", "no", _ewc,
                 (HyperParameter("ewc_lambda", 100.0, "weight of the penalty", NON_NEGATIVE),
                  HyperParameter("ewc_decay", 0.5, "decay of older importances",
                                 Rule("must be between 0 and 1", _unit))),
                 state=lambda: (EWC_STATE,), needs_own_run=True),
    StrategySpec("si", "Synaptic Intelligence (Avalanche)", "no", _si,
                 (HyperParameter("si_lambda", 1.0, "weight of the penalty", NON_NEGATIVE),),
                 state=lambda: (SI_STATE,), needs_own_run=True),
    StrategySpec("replay", "experience replay (Avalanche)", "a memory of clips", _replay,
                 (MEMORY,), state=lambda: (REPLAY_STATE,), needs_own_run=True),
    StrategySpec("gem", "Gradient Episodic Memory (Avalanche; QP by quadprog)",
                 "a memory of clips", _gem,
                 (HyperParameter("gem_patterns_per_exp", 64, "clips kept per experience",
                                 AT_LEAST_ONE),
                  HyperParameter("gem_memory_strength", 0.5, "margin of the QP", NON_NEGATIVE)),
                 state=lambda: (GEM_STATE,), needs_own_run=True),
    StrategySpec("agem", "Averaged GEM (Avalanche)", "a memory of clips", _agem,
                 (HyperParameter("agem_patterns_per_exp", 64, "clips kept per experience",
                                 AT_LEAST_ONE),
                  HyperParameter("agem_sample_size", 64, "memory clips per step (global)",
                                 AT_LEAST_ONE)),
                 state=lambda: (AGEM_STATE,), needs_own_run=True),
)
