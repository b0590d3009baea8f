"""What a strategy must carry across an interruption, as plain tensors.

Checkpoints hold only tensors and primitives (``torch.load(weights_only=True)``),
so each piece of strategy state has a :class:`StateAdapter`: ``export`` turns it
into checkpoint entries after every stage, ``restore`` puts it back on resume
(and on the other processes under torchrun). A strategy's spec in
:mod:`cl_spoof.strategies.registry` lists the adapters it needs. State is the
model itself or a few tensors (DFWF teacher, LwF previous model, EWC/SI
importances, GEM memories, RAWM/RWM input spaces, RegO masks and reference
gradient), the experiences seen so far (cumulative) or memories of samples,
saved as the table rows they hold (replay, A-GEM).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from avalanche.benchmarks.utils import concat_datasets
from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader
from avalanche.training import Cumulative
from avalanche.training.plugins import (
    AGEMPlugin,
    EWCPlugin,
    GEMPlugin,
    LwFPlugin,
    ReplayPlugin,
    SynapticIntelligencePlugin,
)
from avalanche.training.storage_policy import ExperienceBalancedBuffer, ReservoirSamplingBuffer
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData

from cl_spoof.errors import CLSpoofError
from cl_spoof.strategies.plugins.dfwf import DFWFPlugin
from cl_spoof.strategies.plugins.projection import RAWMPlugin, RWMPlugin
from cl_spoof.strategies.plugins.rego import RegOPlugin

Export = Callable[[SupervisedTemplate], dict[str, Any]]
Restore = Callable[[SupervisedTemplate, dict[str, Any], int, Sequence[Any] | None], None]


@dataclass(frozen=True)
class StateAdapter:
    """One piece of strategy state: checkpoint entries out (``export``), back in (``restore``).

    ``restore(strategy, state, completed_stages, train_stream)`` runs after the model
    holds the checkpoint's weights; ``train_stream`` lets memories saved as table rows
    be rebuilt from the experiences' datasets.
    """

    name: str
    export: Export
    restore: Restore


def export_state(strategy: SupervisedTemplate, adapters: Sequence[StateAdapter]) -> dict:
    """Checkpoint entries of every adapter (after a stage ends)."""
    state: dict[str, Any] = {}
    for adapter in adapters:
        state.update(adapter.export(strategy))
    return state


def restore_state(strategy: SupervisedTemplate, adapters: Sequence[StateAdapter], state: dict,
                  completed_stages: int, train_stream: Sequence[Any] | None = None) -> None:
    """Put back what :func:`export_state` saved after ``completed_stages`` stages."""
    for adapter in adapters:
        adapter.restore(strategy, state, completed_stages, train_stream)


def _tensor(value: Any) -> torch.Tensor:
    """The tensor inside an Avalanche ``ParamData`` (or the tensor itself)."""
    return (value.data if isinstance(value, ParamData) else value).detach().clone()


def _plugin(strategy: SupervisedTemplate, kind: type) -> Any:
    found = next((p for p in strategy.plugins if isinstance(p, kind)), None)
    if found is None:
        raise CLSpoofError(f"the strategy has no {kind.__name__}; its state cannot be saved")
    return found


def _need_stream(train_stream: Sequence[Any] | None, what: str) -> Sequence[Any]:
    if train_stream is None:
        raise CLSpoofError(f"resuming {what} needs the training stream")
    return train_stream


# --------------------------------------------------------------------------- cumulative


def _cumulative_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                        train_stream: Sequence[Any] | None) -> None:
    if isinstance(strategy, Cumulative) and completed > 0:
        stream = _need_stream(train_stream, "cumulative training")
        strategy.dataset = concat_datasets([stream[k].dataset for k in range(completed)])


CUMULATIVE = StateAdapter("cumulative", lambda strategy: {}, _cumulative_restore)


# --------------------------------------------------------------------------- DFWF


def _dfwf_export(strategy: SupervisedTemplate) -> dict:
    teacher = _plugin(strategy, DFWFPlugin).state_dict()["teacher"]
    return {} if teacher is None else {"dfwf_teacher": teacher}


def _dfwf_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                  train_stream: Sequence[Any] | None) -> None:
    teacher = state.get("dfwf_teacher")
    if teacher is None and completed > 0:
        # The teacher after a stage is a copy of the model after that stage, so a run of
        # another strategy (add-attack switching to DFWF) gets the model it has now.
        teacher = {k: v.detach().clone() for k, v in strategy.model.state_dict().items()}
    _plugin(strategy, DFWFPlugin).load_state_dict({"teacher": teacher})


DFWF = StateAdapter("dfwf", _dfwf_export, _dfwf_restore)


# --------------------------------------------------------------------------- LwF


def _lwf_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    lwf = _plugin(strategy, LwFPlugin)
    if completed > 0:  # its previous model is a copy of the model, taken in training mode
        strategy.model.train()
        lwf.lwf.prev_model = copy.deepcopy(strategy.model)
        lwf.lwf.expcount = completed
        lwf.lwf.prev_classes_by_task[0] = {0, 1}


LWF = StateAdapter("lwf", lambda strategy: {}, _lwf_restore)


# --------------------------------------------------------------------------- EWC


def _ewc_export(strategy: SupervisedTemplate) -> dict:
    ewc = _plugin(strategy, EWCPlugin)
    if not ewc.importances:
        return {}
    t = max(ewc.importances)
    return {"ewc_t": int(t),
            "ewc_importances": {k: v.data.clone() for k, v in ewc.importances[t].items()},
            "ewc_saved_params": {k: v.data.clone() for k, v in ewc.saved_params[t].items()}}


def _ewc_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    ewc = _plugin(strategy, EWCPlugin)
    if "ewc_t" in state:
        t = int(state["ewc_t"])
        ewc.importances[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                              for k, v in state["ewc_importances"].items()}
        ewc.saved_params[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                               for k, v in state["ewc_saved_params"].items()}


EWC = StateAdapter("ewc", _ewc_export, _ewc_restore)


# --------------------------------------------------------------------------- SI


def _si_export(strategy: SupervisedTemplate) -> dict:
    si = _plugin(strategy, SynapticIntelligencePlugin)
    if not si.ewc_data[0]:
        return {}
    return {"si_ewc": [{k: _tensor(v) for k, v in d.items()} for d in si.ewc_data],
            "si_syn": {key: {k: _tensor(v) for k, v in d.items()}
                       for key, d in si.syn_data.items()}}


def _si_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                train_stream: Sequence[Any] | None) -> None:
    si = _plugin(strategy, SynapticIntelligencePlugin)
    if "si_ewc" in state:
        for target, saved in zip(si.ewc_data, state["si_ewc"], strict=True):
            target.update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})
        for key, saved in state["si_syn"].items():
            si.syn_data[key].update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})


SI = StateAdapter("si", _si_export, _si_restore)


# --------------------------------------------------------------------------- GEM


def _gem_export(strategy: SupervisedTemplate) -> dict:
    gem = _plugin(strategy, GEMPlugin)
    if not gem.memory_x:
        return {}
    return {"gem_memory": {name: {str(t): v.clone() for t, v in getattr(gem, name).items()}
                           for name in ("memory_x", "memory_y", "memory_tid")}}


def _gem_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                 train_stream: Sequence[Any] | None) -> None:
    gem = _plugin(strategy, GEMPlugin)
    if "gem_memory" in state:
        for name, saved in state["gem_memory"].items():
            getattr(gem, name).update({int(t): v for t, v in saved.items()})


GEM = StateAdapter("gem", _gem_export, _gem_restore)


# --------------------------------------------------------------------------- A-GEM


def _agem_export(strategy: SupervisedTemplate) -> dict:
    agem = _plugin(strategy, AGEMPlugin)
    if not agem.buffers:
        return {}
    # One buffer per experience, in order: buffer k holds rows of experience k.
    return {"agem_buffers": [torch.tensor([int(r) for r in b.rows], dtype=torch.long)
                             for b in agem.buffers]}


def _agem_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                  train_stream: Sequence[Any] | None) -> None:
    agem = _plugin(strategy, AGEMPlugin)
    if "agem_buffers" not in state:
        return
    stream = _need_stream(train_stream, "agem")
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


AGEM = StateAdapter("agem", _agem_export, _agem_restore)


# --------------------------------------------------------------------------- replay


def _replay_export(strategy: SupervisedTemplate) -> dict:
    storage = _plugin(strategy, ReplayPlugin).storage_policy
    if not isinstance(storage, ExperienceBalancedBuffer):
        raise CLSpoofError(f"replay memory of type {type(storage).__name__} cannot be saved")
    return {"replay_num_exps": int(storage._num_exps),
            "replay_groups": {
                str(g): {"rows": torch.tensor([int(r) for r in b.buffer.rows], dtype=torch.long),
                         "weights": b._buffer_weights.clone(), "max_size": int(b.max_size)}
                for g, b in storage.buffer_groups.items()}}


def _replay_restore(strategy: SupervisedTemplate, state: dict, completed: int,
                    train_stream: Sequence[Any] | None) -> None:
    if "replay_groups" not in state:
        return
    stream = _need_stream(train_stream, "replay")
    storage = _plugin(strategy, ReplayPlugin).storage_policy
    for g, group in state["replay_groups"].items():
        dataset = stream[int(g)].dataset
        position = {int(r): i for i, r in enumerate(dataset.rows)}
        buffer = ReservoirSamplingBuffer(int(group["max_size"]))
        buffer.buffer = dataset.subset([position[int(r)] for r in group["rows"]])
        buffer._buffer_weights = group["weights"].clone()
        storage.buffer_groups[int(g)] = buffer
    storage._num_exps = int(state["replay_num_exps"])


REPLAY = StateAdapter("replay", _replay_export, _replay_restore)


# --------------------------------------------------------------------------- RAWM, RWM, RegO


def _plugin_state(kind: type, key: str) -> StateAdapter:
    """An adapter saving ``plugin.state_dict()`` under ``key`` (always: the first
    experience's state is needed too). A run of another strategy has none, so
    ``add-attack`` cannot switch to it (its spec says ``needs_own_run``)."""

    def export(strategy: SupervisedTemplate) -> dict:
        return {key: _plugin(strategy, kind).state_dict()}

    def restore(strategy: SupervisedTemplate, state: dict, completed: int,
                train_stream: Sequence[Any] | None) -> None:
        if key in state:
            plugin = _plugin(strategy, kind)
            if kind is RegOPlugin:
                plugin.load_state_dict(state[key], strategy.device)
            else:
                plugin.load_state_dict(state[key])

    return StateAdapter(key, export, restore)


RAWM = _plugin_state(RAWMPlugin, "rawm")
RWM = _plugin_state(RWMPlugin, "rwm")
REGO = _plugin_state(RegOPlugin, "rego")


__all__ = ["AGEM", "CUMULATIVE", "DFWF", "EWC", "GEM", "LWF", "RAWM", "REGO", "REPLAY", "RWM",
           "SI", "StateAdapter", "export_state", "restore_state"]
