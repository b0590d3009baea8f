"""What a strategy must carry across an interruption, as plain tensors: the plumbing.

Checkpoints hold only tensors and primitives (``torch.load(weights_only=True)``),
so each piece of strategy state has a :class:`StateAdapter`: ``export`` turns it
into checkpoint entries after every stage, ``restore`` puts it back on resume
(and on the other processes under torchrun). Each method declares its adapters
in its home under :mod:`cl_spoof.strategies.methods` and its spec lists them.
State is the model itself or a few tensors (DFWF teacher, LwF previous model,
EWC/SI importances, GEM memories, RAWM/RWM input spaces, RegO masks and reference
gradient), the experiences seen so far (cumulative) or memories of samples,
saved as the table rows they hold (replay, A-GEM).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cl_spoof.errors import CLSpoofError

if TYPE_CHECKING:
    from avalanche.training.templates import SupervisedTemplate

    Export = Callable[[SupervisedTemplate], dict[str, Any]]
    Restore = Callable[[SupervisedTemplate, dict[str, Any], int, Sequence[Any] | None], None]
    Start = Callable[[SupervisedTemplate], None]

__all__ = ["StateAdapter", "export_state", "find_plugin", "need_stream", "plugin_state",
           "restore_state", "start_from_model"]


@dataclass(frozen=True)
class StateAdapter:
    """One piece of strategy state: checkpoint entries out (``export``), back in (``restore``).

    ``restore(strategy, state, completed_stages, train_stream)`` runs after the model
    holds the checkpoint's weights; ``train_stream`` lets memories saved as table rows
    be rebuilt from the experiences' datasets. ``start(strategy)``, for state that is
    "the previous model" (the DFWF teacher, LwF's previous model), makes it the model
    the strategy holds now: a run from a pretrained model learns its first experience
    against it. State learnt from old data (importances, memories, input spaces)
    has no ``start``: that data is not at hand, so it starts empty.
    """

    name: str
    export: Export
    restore: Restore
    start: Start | None = None


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


def start_from_model(strategy: SupervisedTemplate, adapters: Sequence[StateAdapter]) -> None:
    """Make every "previous model" the model ``strategy`` holds now (each adapter's
    ``start``), before the first experience of a run from a pretrained model."""
    for adapter in adapters:
        if adapter.start is not None:
            adapter.start(strategy)


def find_plugin(strategy: SupervisedTemplate, kind: type) -> Any:
    """The strategy's plugin of type ``kind`` (:class:`CLSpoofError` when it has none)."""
    found = next((p for p in strategy.plugins if isinstance(p, kind)), None)
    if found is None:
        raise CLSpoofError(f"the strategy has no {kind.__name__}; its state cannot be saved")
    return found


def need_stream(train_stream: Sequence[Any] | None, what: str) -> Sequence[Any]:
    """``train_stream``, which restoring ``what`` needs (:class:`CLSpoofError` without it)."""
    if train_stream is None:
        raise CLSpoofError(f"resuming {what} needs the training stream")
    return train_stream


def plugin_state(kind: type, key: str, *, on_device: bool = False) -> StateAdapter:
    """An adapter saving ``plugin.state_dict()`` under ``key`` (always: the first
    experience's state is needed too). A run of another strategy has none, so
    ``add-attack`` cannot switch to it (its spec says ``needs_own_run``).
    ``on_device``: the plugin's ``load_state_dict`` also takes the strategy's device."""

    def export(strategy: SupervisedTemplate) -> dict:
        return {key: find_plugin(strategy, kind).state_dict()}

    def restore(strategy: SupervisedTemplate, state: dict, completed: int,
                train_stream: Sequence[Any] | None) -> None:
        if key in state:
            plugin = find_plugin(strategy, kind)
            if on_device:
                plugin.load_state_dict(state[key], strategy.device)
            else:
                plugin.load_state_dict(state[key])

    return StateAdapter(key, export, restore)
