"""What a strategy must carry across an interruption, as plain tensors.

Checkpoints hold only tensors and primitives (``torch.load(weights_only=True)``),
so each strategy's state is exported to such a dict after every stage and put
back on resume. Supported: strategies whose state is the model itself or a few
tensors (naive, joint, dfwf, lwf, ewc, si, gem), the experiences seen so far
(cumulative) or memories of samples, saved as the table rows they hold (replay,
dfwf+replay, agem). Every shipped strategy is resumable; :func:`check_resumable`
guards strategies added later.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

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
from cl_spoof.strategies.dfwf import DFWFPlugin

RESUMABLE: tuple[str, ...] = ("naive", "joint", "cumulative", "dfwf", "lwf", "ewc", "si",
                               "replay", "dfwf+replay", "gem", "agem")


def check_resumable(name: str) -> None:
    """Raise :class:`CLSpoofError` when runs of strategy ``name`` cannot be resumed."""
    if name not in RESUMABLE:
        raise CLSpoofError(
            f"resuming a {name!r} run is not supported yet (it keeps data buffers or a "
            f"training trajectory outside the checkpoint); resumable: {', '.join(RESUMABLE)}"
        )


def _tensor(value) -> torch.Tensor:
    """The tensor inside an Avalanche ``ParamData`` (or the tensor itself)."""
    return (value.data if isinstance(value, ParamData) else value).detach().clone()


def _plugin(strategy: SupervisedTemplate, kind: type):
    return next((p for p in strategy.plugins if isinstance(p, kind)), None)


def export_state(strategy: SupervisedTemplate) -> dict:
    """Tensors a resumed run needs besides model and optimizer (after a stage ends)."""
    state: dict = {}
    dfwf = _plugin(strategy, DFWFPlugin)
    if dfwf is not None and dfwf.teacher is not None:
        state["dfwf_teacher"] = dfwf.state_dict()
    ewc = _plugin(strategy, EWCPlugin)
    if ewc is not None and ewc.importances:
        t = max(ewc.importances)
        state["ewc_t"] = int(t)
        state["ewc_importances"] = {k: v.data.clone() for k, v in ewc.importances[t].items()}
        state["ewc_saved_params"] = {k: v.data.clone() for k, v in ewc.saved_params[t].items()}
    si = _plugin(strategy, SynapticIntelligencePlugin)
    if si is not None and si.ewc_data[0]:
        state["si_ewc"] = [{k: _tensor(v) for k, v in d.items()} for d in si.ewc_data]
        state["si_syn"] = {key: {k: _tensor(v) for k, v in d.items()}
                           for key, d in si.syn_data.items()}
    gem = _plugin(strategy, GEMPlugin)
    if gem is not None and gem.memory_x:
        state["gem_memory"] = {name: {str(t): v.clone() for t, v in getattr(gem, name).items()}
                               for name in ("memory_x", "memory_y", "memory_tid")}
    agem = _plugin(strategy, AGEMPlugin)
    if agem is not None and agem.buffers:
        # One buffer per experience, in order: buffer k holds rows of experience k.
        state["agem_buffers"] = [torch.tensor([int(r) for r in b.rows], dtype=torch.long)
                                 for b in agem.buffers]
    replay = _plugin(strategy, ReplayPlugin)
    if replay is not None and isinstance(replay.storage_policy, ExperienceBalancedBuffer):
        storage = replay.storage_policy
        state["replay_num_exps"] = int(storage._num_exps)
        state["replay_groups"] = {
            str(g): {"rows": torch.tensor([int(r) for r in b.buffer.rows], dtype=torch.long),
                     "weights": b._buffer_weights.clone(), "max_size": int(b.max_size)}
            for g, b in storage.buffer_groups.items()}
    return state


def restore_state(strategy: SupervisedTemplate, state: dict, completed_stages: int,
                  train_stream: Sequence | None = None) -> None:
    """Put back :func:`export_state`'s tensors after ``completed_stages`` stages.

    The model must already hold the checkpoint's weights (LwF's previous model is
    a copy of it, taken in training mode as Avalanche does). Cumulative gets the
    datasets of the completed experiences of ``train_stream`` back.
    """
    if isinstance(strategy, Cumulative) and completed_stages > 0:
        if train_stream is None:
            raise CLSpoofError("resuming cumulative training needs the training stream")
        strategy.dataset = concat_datasets(
            [train_stream[k].dataset for k in range(completed_stages)])
    si = _plugin(strategy, SynapticIntelligencePlugin)
    if si is not None and "si_ewc" in state:
        for target, saved in zip(si.ewc_data, state["si_ewc"], strict=True):
            target.update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})
        for key, saved in state["si_syn"].items():
            si.syn_data[key].update({k: ParamData(k, init_tensor=v) for k, v in saved.items()})
    gem = _plugin(strategy, GEMPlugin)
    if gem is not None and "gem_memory" in state:
        for name, saved in state["gem_memory"].items():
            getattr(gem, name).update({int(t): v for t, v in saved.items()})
    agem = _plugin(strategy, AGEMPlugin)
    if agem is not None and "agem_buffers" in state:
        if train_stream is None:
            raise CLSpoofError("resuming agem needs the training stream")
        agem.buffers = []
        for k, rows in enumerate(state["agem_buffers"]):
            dataset = train_stream[k].dataset
            position = {int(r): i for i, r in enumerate(dataset.rows)}
            agem.buffers.append(dataset.subset([position[int(r)] for r in rows]))
        # As A-GEM's update_memory does after each experience (num_workers=0).
        agem.buffer_dataloader = GroupBalancedInfiniteDataLoader(
            agem.buffers, batch_size=agem.sample_size // len(agem.buffers), num_workers=0,
            pin_memory=False, persistent_workers=False)
        agem.buffer_dliter = iter(agem.buffer_dataloader)
    replay = _plugin(strategy, ReplayPlugin)
    if replay is not None and "replay_groups" in state:
        if train_stream is None:
            raise CLSpoofError("resuming replay needs the training stream")
        storage = replay.storage_policy
        for g, group in state["replay_groups"].items():
            dataset = train_stream[int(g)].dataset
            position = {int(r): i for i, r in enumerate(dataset.rows)}
            buffer = ReservoirSamplingBuffer(int(group["max_size"]))
            buffer.buffer = dataset.subset([position[int(r)] for r in group["rows"]])
            buffer._buffer_weights = group["weights"].clone()
            storage.buffer_groups[int(g)] = buffer
        storage._num_exps = int(state["replay_num_exps"])
    dfwf = _plugin(strategy, DFWFPlugin)
    if dfwf is not None:
        dfwf.load_teacher_state(strategy.model, state.get("dfwf_teacher"))
    lwf = _plugin(strategy, LwFPlugin)
    if lwf is not None and completed_stages > 0:
        strategy.model.train()
        lwf.lwf.prev_model = copy.deepcopy(strategy.model)
        lwf.lwf.expcount = completed_stages
        lwf.lwf.prev_classes_by_task[0] = {0, 1}
    ewc = _plugin(strategy, EWCPlugin)
    if ewc is not None and "ewc_t" in state:
        t = int(state["ewc_t"])
        ewc.importances[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                              for k, v in state["ewc_importances"].items()}
        ewc.saved_params[t] = {k: ParamData(k, init_tensor=v.to(strategy.device))
                               for k, v in state["ewc_saved_params"].items()}


__all__ = ["RESUMABLE", "check_resumable", "export_state", "restore_state"]
