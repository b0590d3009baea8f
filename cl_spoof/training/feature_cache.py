"""``FeatureCachePlugin``: the features of a frozen prefix computed once per clip
(``train.feature_cache``), with any strategy.

A detector declares its prefix (:meth:`~cl_spoof.models.base.Detector.prefix_modules`,
e.g. AASIST's sinc front end and residual encoder, the ``ssl`` encoder) and splits its
forward into ``forward_suffix(forward_prefix(x))``. Once ``train.trainable`` has frozen
that whole prefix, its output for a clip never changes, so this plugin keeps it and the
model's forward runs only the layers that learn.

**Keys.** Every cached row is found by a BLAKE2b digest of the exact input the model gets
(the cropped clip's float32 samples and its length: the audio, the crop and the level
alike), under a digest of the prefix itself: the detector's class and config (sizes,
sample rate), every parameter and buffer of the prefix modules, whether the model is
training, the input's dtype and device type and the autocast state. Other audio, another
crop or changed prefix weights therefore never meet a stale entry: when the prefix
digest changes (the first experience trained it, a checkpoint was loaded) the cache
starts afresh.

**In memory, per run**, bounded by ``max_bytes`` (``train.feature_cache_mb``): features
are large (AASIST-L: 64 KB per 4-s clip; a frozen SSL encoder keeps every used layer's
frames) and belong to one model's weights, and a run revisits its own clips across
epochs and stages; clips beyond the bound run the whole network each time. Nothing is
shared between processes, so nothing needs locking.

**When it serves.** In every training epoch of an experience where the whole prefix is
frozen (from the second experience with ``train.trainable``, from the first after
``model.init``) and in every evaluation. Never in the passes other plugins run between
epochs (RAWM's, RWM's and RegO's pass over a learnt experience), nor for a batch while
another hook watches a layer of the prefix (self-distillation exits, a DFWF layer inside
it): those run the whole network, as without the cache. A deep copy of the model (DFWF's
teacher, LwF's previous model) is never served either.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from avalanche.core import SupervisedPlugin
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.models.base import Detector, serve_prefix
from cl_spoof.strategies.layers import matches

__all__ = ["FeatureCache", "FeatureCachePlugin", "prefix_digest"]

KEY = "train.feature_cache"


def _detector(model: nn.Module) -> Detector:
    """The detector inside a data-parallel wrapper (or ``model`` itself)."""
    inner = getattr(model, "module", model)
    if not isinstance(inner, Detector):
        raise ConfigError(f"{KEY}: the model ({type(inner).__name__}) is not a cl-spoof "
                          "detector")
    return inner


def _prefix_tensors(model: Detector) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer (persistent or not) of the prefix modules, by name."""
    out: list[tuple[str, torch.Tensor]] = []
    for name in model.prefix_modules():
        module = model.get_submodule(name)
        out += [(f"{name}.{n}", t) for n, t in module.named_parameters()]
        out += [(f"{name}.{n}", t) for n, t in module.named_buffers()]
    return out


def prefix_digest(model: Detector) -> bytes:
    """Digest of what the prefix computes: class, config, every parameter and buffer."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__qualname__}|{getattr(model, 'config', None)!r}".encode())
    for name, t in _prefix_tensors(model):
        value = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"|{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        h.update(value.view(torch.uint8).numpy().data if value.numel() else b"")
    return h.digest()


def _watched(model: Detector) -> bool:
    """Whether a hook other than freezing's watches a prefix module (its output or
    input would then be expected: run the whole network)."""
    from cl_spoof.training.freeze import _stay_in_eval

    for name in model.prefix_modules():
        for module in model.get_submodule(name).modules():
            if module._forward_hooks or any(h is not _stay_in_eval for h in
                                            module._forward_pre_hooks.values()):
                return True
    return False


class FeatureCache:
    """Prefix features by input digest, for one prefix digest at a time, in memory."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.entries: dict[bytes, torch.Tensor] = {}
        self.nbytes = 0
        self.prefix: bytes | None = None
        self.hits = self.misses = self.full = self.bypassed = 0

    def use_prefix(self, digest: bytes) -> None:
        """Serve the prefix of ``digest``; a new one drops every entry."""
        if digest != self.prefix:
            self.entries.clear()
            self.nbytes = 0
            self.prefix = digest

    def __len__(self) -> int:
        return len(self.entries)

    def features(self, model: Detector, x: torch.Tensor) -> torch.Tensor:
        """``model.forward_prefix(x)``, row by row from the cache where it holds them."""
        if self.prefix is None or _watched(model):
            self.bypassed += 1
            return model.forward_prefix(x)
        rows = x.detach().to("cpu").contiguous()
        state = (f"{model.training}|{x.dtype}|{x.device.type}|"
                 f"{torch.is_autocast_enabled(x.device.type)}|{tuple(x.shape[1:])}").encode()
        keys = []
        for row in rows:
            h = hashlib.blake2b(state, digest_size=16)
            h.update(row.view(torch.uint8).numpy().data)
            keys.append(h.digest())
        missing = [i for i, k in enumerate(keys) if k not in self.entries]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if len(missing) == len(keys):  # the whole batch, as the network would
            computed = model.forward_prefix(x)
            self._store(keys, computed)
            return computed
        rows_of: dict[int, torch.Tensor] = {}
        if missing:
            fresh = model.forward_prefix(x[missing])
            self._store([keys[i] for i in missing], fresh)
            rows_of = dict(zip(missing, fresh, strict=True))
        parts = [rows_of[i] if i in rows_of else self.entries[k].to(x.device)
                 for i, k in enumerate(keys)]
        return torch.stack(parts)

    def _store(self, keys: list[bytes], values: torch.Tensor) -> None:
        per_row = values[0].numel() * values.element_size() if len(values) else 0
        for k, v in zip(keys, values, strict=True):
            if self.nbytes + per_row > self.max_bytes:
                self.full += 1
                continue
            if k not in self.entries:
                self.entries[k] = v.detach().to("cpu", copy=True)
                self.nbytes += per_row


class FeatureCachePlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Serves the model's frozen prefix from a :class:`FeatureCache` (module notes).

    ``trainable``: the patterns of ``train.trainable`` (checked by :meth:`check`: the
    whole prefix must stay frozen once freezing starts). Put it after
    :class:`~cl_spoof.training.FreezePlugin`, which must have frozen the prefix before
    this plugin's ``before_training_exp`` looks.
    """

    def __init__(self, trainable: tuple[str, ...] | list[str] = (),
                 max_mb: float = 4096) -> None:
        super().__init__()
        self.trainable = tuple(trainable)
        self.cache = FeatureCache(int(max_mb * 2**20))
        self._train_digest: bytes | None = None  # set while an experience's prefix is frozen
        self._served: Detector | None = None
        self._resume: bool = False  # serve training again after an evaluation inside it

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` naming the key when the cache cannot apply: no prefix,
        or a prefix that would not be wholly frozen."""
        detector = _detector(model)
        names = detector.prefix_modules()
        if not names:
            raise ConfigError(f"{KEY}: {detector.no_prefix_reason()}")
        learning = [n for n, p in _prefix_params(detector) if p.requires_grad and (
            not self.trainable or any(matches(n, pat) for pat in self.trainable))]
        if not learning:
            return
        where = ", ".join(names)
        if not self.trainable:
            raise ConfigError(f"{KEY}: nothing of the model's prefix ({where}) is frozen; set "
                              "train.trainable to layers after it (the rest is then frozen)")
        more = f" (and {len(learning) - 1} more)" if len(learning) > 1 else ""
        raise ConfigError(f"{KEY}: train.trainable lets {learning[0]}{more} learn, inside "
                          f"the prefix ({where}) that must be wholly frozen; name only layers "
                          "after it")

    # ------------------------------------------------------------------ training

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """Serve this experience's epochs when the whole prefix is frozen now."""
        model = _detector(strategy.model)
        frozen = all(not p.requires_grad for _, p in _prefix_params(model))
        self._train_digest = prefix_digest(model) if frozen else None

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        if self._train_digest is not None:
            _check_deterministic(_detector(strategy.model))
            self._serve(_detector(strategy.model), self._train_digest)

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        self._stop()

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._stop()
        self._train_digest = None

    # ------------------------------------------------------------------ evaluation

    def before_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._resume = self._served is not None
        model = _detector(strategy.model)
        self._serve(model, prefix_digest(model))

    def after_eval(self, strategy: Any, **kwargs: Any) -> None:
        self._stop()
        if self._resume and self._train_digest is not None:
            self._serve(_detector(strategy.model), self._train_digest)
        self._resume = False

    # ------------------------------------------------------------------ plumbing

    def _serve(self, model: Detector, digest: bytes) -> None:
        self.cache.use_prefix(digest)
        self._served = model
        serve_prefix(model, self.cache.features)

    def _stop(self) -> None:
        if self._served is not None:
            serve_prefix(self._served, None)
            self._served = None


def _prefix_params(model: Detector) -> list[tuple[str, nn.Parameter]]:
    """The prefix's parameters under their names in the whole model."""
    return [(f"{name}.{n}", p) for name in model.prefix_modules()
            for n, p in model.get_submodule(name).named_parameters()]


def _check_deterministic(model: Detector) -> None:
    """Raise :class:`ConfigError` when a prefix layer would still behave differently in
    training (dropout, BatchNorm on batch statistics): its output could not be reused."""
    from cl_spoof.training.freeze import _stay_in_eval

    for name in model.prefix_modules():
        for sub, module in model.get_submodule(name).named_modules():
            if not module.training:
                continue
            pinned = any(h is _stay_in_eval for h in module._forward_pre_hooks.values())
            if (isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0) or (
                    isinstance(module, nn.modules.batchnorm._BatchNorm) and not pinned):
                raise ConfigError(f"{KEY}: layer {name}.{sub} of the frozen prefix still "
                                  "changes in training (dropout or batch statistics), so its "
                                  "output is never the same twice")
