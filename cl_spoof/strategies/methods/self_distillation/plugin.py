"""``SelfDistillationPlugin``: self-distillation as an Avalanche plugin, for any strategy.

The model carries its exits (:func:`cl_spoof.models.exits.attach_exits`, turned on by
``model.self_distillation.enabled``); they run inside the model's own training
forward, so this plugin only clears them before the forward and, before the
backward pass, adds
:func:`~cl_spoof.strategies.methods.self_distillation.losses.self_distillation_loss`
to ``strategy.loss``. It composes with DFWF, replay and every other strategy: their
plugins add their own terms to the same loss. No state beyond the model (the exits
are model weights), so resuming needs nothing more.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin

from cl_spoof.errors import ConfigError
from cl_spoof.models.exits import SelfDistillationExits, exits_of
from cl_spoof.strategies.methods.dfwf.regularization import unwrap_model
from cl_spoof.strategies.methods.self_distillation.losses import self_distillation_loss

__all__ = ["SelfDistillationPlugin"]


class SelfDistillationPlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Adds the hard, soft and feature losses of the model's self-distillation exits.

    :param hard_weight: weight of the cross-entropy summed over the shallow exits.
    :param soft_weight: weight of the T²-scaled KL from the deepest exit, summed.
    :param feature_weight: weight of the squared feature distance to the deepest
        embedding, summed.
    :param temperature: softmax temperature of the soft loss.

    Records ``history``: one dict per experience with the mean ``hard``, ``soft``,
    ``feature`` (unweighted) and ``extra_loss`` (weighted) added per iteration.
    """

    def __init__(self, hard_weight: float = 0.7, soft_weight: float = 0.3,
                 feature_weight: float = 0.1, temperature: float = 3.0) -> None:
        """Validate the settings; :class:`ConfigError` names the argument."""
        super().__init__()
        for name, value in (("hard_weight", hard_weight), ("soft_weight", soft_weight),
                            ("feature_weight", feature_weight)):
            if value < 0:
                raise ConfigError(f"SelfDistillationPlugin({name}={value}): must not be "
                                  "negative")
        if temperature <= 0:
            raise ConfigError(f"SelfDistillationPlugin(temperature={temperature}): must be "
                              "positive")
        self.hard_weight = float(hard_weight)
        self.soft_weight = float(soft_weight)
        self.feature_weight = float(feature_weight)
        self.temperature = float(temperature)
        self.history: list[dict[str, Any]] = []
        self._exits: SelfDistillationExits | None = None
        self._sums: dict[str, torch.Tensor | float] = {}
        self._iterations = 0

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Find the model's exits (a clear error when it has none); reset the stats."""
        self._exits = exits_of(unwrap_model(strategy.model))
        if self._exits is None:
            raise ConfigError("SelfDistillationPlugin: the model has no self-distillation "
                              "exits; set model.self_distillation.enabled (or call "
                              "cl_spoof.models.exits.attach_exits on it)")
        self._sums = {"hard": 0.0, "soft": 0.0, "feature": 0.0, "extra_loss": 0.0}
        self._iterations = 0

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        """Forget outputs of any earlier forward (e.g. a plugin's own passes)."""
        if self._exits is not None:
            self._exits.clear()

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Add the weighted self-distillation loss of this batch to ``strategy.loss``."""
        if self._exits is None:
            return
        outputs = self._exits.take()
        if outputs is None:
            return
        loss = self_distillation_loss(
            outputs.logits, outputs.features, strategy.mb_output, outputs.deep_features,
            strategy.mb_y, hard_weight=self.hard_weight, soft_weight=self.soft_weight,
            feature_weight=self.feature_weight, temperature=self.temperature,
            criterion=strategy._criterion)
        strategy.loss = strategy.loss + loss.total
        self._iterations += 1
        for name, value in (("hard", loss.hard), ("soft", loss.soft),
                            ("feature", loss.feature), ("extra_loss", loss.total)):
            self._sums[name] = self._sums[name] + value.detach()  # no sync per batch

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Record the experience's mean losses."""
        n = max(self._iterations, 1)
        exp = strategy.experience
        self.history.append({"experience": getattr(exp, "current_experience",
                                                   len(self.history)),
                             "iterations": self._iterations,
                             **{k: float(v) / n for k, v in self._sums.items()}})
        if self._exits is not None:
            self._exits.clear()
