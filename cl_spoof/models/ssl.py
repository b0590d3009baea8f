"""A self-supervised speech encoder (wav2vec 2.0 / XLS-R / HuBERT / WavLM) with a small head.

The front end of the strongest recent continual fake-audio work (RegO, RAIS,
RF-Prompt): a pretrained SSL encoder, frozen or with its top transformer layers
trainable, and a small classifier on a **learned weighted sum of its layers**
(softmax-normalised weights, one per transformer layer).

The encoder is built with torchaudio's model builders (``torchaudio.models.wav2vec2_*``,
``hubert_*``, ``wavlm_*``, or ``wav2vec2_model`` / ``wavlm_model`` with explicit sizes for
``architecture: custom_wav2vec2`` / ``custom_wavlm``). Its weights come **only** from the
local file named by ``model.overrides.checkpoint`` (a state dict of torchaudio's
``Wav2Vec2Model``; README, "SSL front end", says how to make one); nothing is ever
downloaded. A missing file, or one that does not fit the architecture, is a
:class:`~cl_spoof.errors.ConfigError` naming the key.

Head: per-frame Linear ``D -> head_dim`` + GELU, mean and standard deviation over time,
Linear ``2 head_dim -> head_dim`` + GELU = the utterance embedding (the ``embedding`` hook
point), then Linear ``head_dim -> 2`` logits.

**Checkpoints stay small.** The frozen encoder weights are the user's file, so they are
left out of ``state_dict()`` (an XLS-R 300M copy would add 1.2 GB to every stage's
checkpoint and DFWF teacher); a 2-number fingerprint of them is saved instead, and
loading a state whose fingerprint differs from the file's is an error naming
``model.overrides.checkpoint``. Loading a state fills the frozen weights from the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.infra.checkpoints import state_mismatch
from cl_spoof.labels import NUM_CLASSES
from cl_spoof.models.base import MAX_LAYERS, Detector, Preset, module_values, on_meta_device

__all__ = ["ARCHITECTURES", "CONFIGS", "PRESETS", "SSLConfig", "SSLDetector"]

_M = torchaudio.models

#: Named architectures: torchaudio builder and whether the encoder expects a
#: layer-normalised waveform (as torchaudio's pipeline bundles of these models do).
ARCHITECTURES: dict[str, tuple[Callable[..., nn.Module], bool]] = {
    "wav2vec2_base": (_M.wav2vec2_base, False),
    "wav2vec2_large": (_M.wav2vec2_large, False),
    "wav2vec2_large_lv60k": (_M.wav2vec2_large_lv60k, True),  # also XLSR-53's shape
    "wav2vec2_xlsr_300m": (_M.wav2vec2_xlsr_300m, True),
    "wav2vec2_xlsr_1b": (_M.wav2vec2_xlsr_1b, True),
    "wav2vec2_xlsr_2b": (_M.wav2vec2_xlsr_2b, True),
    "hubert_base": (_M.hubert_base, False),
    "hubert_large": (_M.hubert_large, True),
    "hubert_xlarge": (_M.hubert_xlarge, True),
    "wavlm_base": (_M.wavlm_base, False),  # WavLM Base and Base+
    "wavlm_large": (_M.wavlm_large, True),
}
#: Architectures whose sizes come from ``model.overrides.encoder_params``.
CUSTOM: dict[str, Callable[..., nn.Module]] = {
    "custom_wav2vec2": _M.wav2vec2_model,  # also HuBERT
    "custom_wavlm": _M.wavlm_model,
}


@dataclass(frozen=True)
class SSLConfig:
    """Encoder file and architecture, what trains, and the head's size."""

    checkpoint: str | None = None  # local state-dict file of the encoder (required)
    architecture: str = "wav2vec2_xlsr_300m"  # a key of ARCHITECTURES or CUSTOM
    encoder_params: dict[str, Any] = field(default_factory=dict)  # sizes for custom_*
    num_layers: int = 0  # transformer layers used (the first N); 0 = all
    trainable_layers: int = 0  # top used layers fine-tuned; 0 = encoder frozen
    normalize_waveform: bool | None = None  # None: as the architecture's bundle
    head_dim: int = 128
    sample_rate: int = 16_000  # data.sample_rate (build_model sets it): must be 16 kHz

    def __post_init__(self) -> None:
        """Check names and sizes (the file itself is read when the model is built)."""
        if self.sample_rate != 16_000:
            raise ConfigError(f"data.sample_rate: the ssl preset's encoders were trained on "
                              f"16 kHz speech; got {self.sample_rate} Hz (set "
                              f"data.sample_rate: 16000)")
        names = [*ARCHITECTURES, *CUSTOM]
        if self.architecture not in names:
            raise ConfigError(f"model.overrides.architecture: unknown SSL architecture "
                              f"{self.architecture!r}; valid: {', '.join(names)}")
        if not isinstance(self.encoder_params, dict):
            raise ConfigError("model.overrides.encoder_params must be a mapping")
        if self.encoder_params and self.architecture not in CUSTOM:
            raise ConfigError("model.overrides.encoder_params is only for architecture "
                              f"{' or '.join(CUSTOM)}; {self.architecture!r} has fixed sizes")
        layers = self.encoder_params.get("encoder_num_layers", 0)
        convs = self.encoder_params.get("extractor_conv_layer_config") or ()
        if (isinstance(layers, int) and layers > MAX_LAYERS) or (
                isinstance(convs, list | tuple) and len(convs) > MAX_LAYERS):
            raise ConfigError(f"model.overrides.encoder_params: at most {MAX_LAYERS} "
                              "transformer layers and convolution layers")
        if self.checkpoint is not None and not isinstance(self.checkpoint, str):
            raise ConfigError("model.overrides.checkpoint must be a path (a string)")
        for name in ("num_layers", "trainable_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"model.overrides.{name} must be an integer >= 0; "
                                  f"got {value!r}")
        if isinstance(self.head_dim, bool) or not isinstance(self.head_dim, int) \
                or self.head_dim < 1:
            raise ConfigError(f"model.overrides.head_dim must be a positive integer; "
                              f"got {self.head_dim!r}")


#: The configs of the SSL presets (see :data:`PRESETS` below).
CONFIGS: dict[str, SSLConfig] = {"ssl": SSLConfig()}

_FILE_HELP = ("cl-spoof never downloads weights; README, 'SSL front end', says how to save "
              "an encoder to a local file")


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The encoder state dict in ``path`` (bundle-wrapper prefix and ASR head removed)."""
    if not path.is_file():
        raise ConfigError(f"model.overrides.checkpoint: {path}: file not found ({_FILE_HELP})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        raise ConfigError(f"model.overrides.checkpoint: {path}: not a readable PyTorch "
                          f"state dict ({type(exc).__name__})") from None
    for key in ("state_dict", "model"):  # a dict wrapping the state dict
        if isinstance(state, Mapping) and set(state) == {key} and isinstance(state[key],
                                                                             Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"model.overrides.checkpoint: {path}: not a state dict of "
                          "tensors (save one with torch.save(model.state_dict(), path))")
    if all(k.startswith("model.") for k in state):  # a pipeline bundle's wrapper
        state = {k[len("model."):]: v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("aux.")}  # an ASR head


def _encoder(c: SSLConfig) -> tuple[nn.Module, bool]:
    """The encoder of ``c`` with fresh weights, and whether it expects a layer-normalised
    waveform (its weights come from the file later)."""
    if c.architecture in CUSTOM:
        try:
            return CUSTOM[c.architecture](**c.encoder_params), False
        except TypeError as exc:
            raise ConfigError(f"model.overrides.encoder_params: {exc}") from None
    builder, normalize = ARCHITECTURES[c.architecture]
    return builder(encoder_layer_drop=0.0), normalize


def ssl_values(c: SSLConfig) -> int:
    """Parameters and buffer values an :class:`SSLDetector` of ``c`` holds, counted on the
    meta device without reading the encoder's file (:attr:`Preset.size`)."""
    with on_meta_device():
        encoder, _ = _encoder(c)
    enc: Any = encoder
    dim = int(enc.encoder.feature_projection.projection.out_features)
    layers = c.num_layers or len(enc.encoder.transformer.layers)
    h = c.head_dim
    head = (dim + 1) * h + (2 * h + 1) * h + (h + 1) * NUM_CLASSES + layers + 2
    return module_values(encoder) + head


def _min_length(encoder: nn.Module) -> int:
    """Shortest waveform that leaves one frame after the convolutional feature extractor."""
    need = 1
    for layer in reversed(list(cast(Any, encoder).feature_extractor.conv_layers)):
        conv = layer.conv
        need = (need - 1) * conv.stride[0] + conv.kernel_size[0]
    return need


class SSLDetector(Detector):
    """SSL encoder + weighted layer sum + small head; 2 logits (index 1 = bona fide).

    Self-distillation segments (:meth:`segments`): the trainable transformer layers
    below the top one (at most three, evenly spaced); none when the encoder is frozen.
    """

    segments_channels_last = True  # transformer layers give (B, T, D)

    def __init__(self, config: SSLConfig) -> None:
        """Build the encoder, load its weights from ``config.checkpoint``, freeze it."""
        super().__init__()
        self.config = c = config
        if c.checkpoint is None:
            raise ConfigError("model.overrides.checkpoint: preset 'ssl' needs the local file "
                              f"of a pretrained encoder ({_FILE_HELP})")
        path = Path(c.checkpoint).expanduser()
        encoder, normalize = _encoder(c)
        if c.normalize_waveform is not None:
            normalize = c.normalize_waveform
        state = _read_state(path)
        problem = state_mismatch(encoder.state_dict(), state)
        if problem is not None:
            raise ConfigError(f"model.overrides.checkpoint: {path} does not fit "
                              f"model.overrides.architecture {c.architecture!r}: {problem}")
        encoder.load_state_dict(state)
        self.encoder: Any = encoder
        self.normalize = normalize
        total = len(self._layers())
        self.num_layers = c.num_layers or total
        if self.num_layers > total:
            raise ConfigError(f"model.overrides.num_layers: {c.num_layers} > the "
                              f"{total} layers of {c.architecture!r}")
        if c.trainable_layers > self.num_layers:
            raise ConfigError(f"model.overrides.trainable_layers: {c.trainable_layers} > the "
                              f"{self.num_layers} layers used")
        encoder.requires_grad_(False)
        self.trainable = list(range(self.num_layers - c.trainable_layers, self.num_layers))
        for i in self.trainable:
            self._layers()[i].requires_grad_(True)

        dim = int(cast(Any, encoder).encoder.feature_projection.projection.out_features)
        self.layer_weights = nn.Parameter(torch.zeros(self.num_layers))
        self.frame_proj = nn.Sequential(nn.Linear(dim, c.head_dim), nn.GELU())
        self.fc = nn.Sequential(nn.Linear(2 * c.head_dim, c.head_dim), nn.GELU())
        self.embedding = nn.Identity()
        self.head = nn.Linear(c.head_dim, NUM_CLASSES)
        self._min_length = _min_length(encoder)

        # Frozen weights stay out of state_dict(); a fingerprint stands in for them.
        self._frozen = [f"encoder.{k}" for k, p in encoder.named_parameters()
                        if not p.requires_grad]
        self.register_buffer("encoder_fingerprint", self._fingerprint(), persistent=True)
        self.register_state_dict_post_hook(self._drop_frozen)
        self.register_load_state_dict_pre_hook(self._fill_frozen)
        self.train()

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, L)`` or ``(B, 1, L)`` -> logits ``(B, 2)``."""
        if x.dim() == 3 and x.shape[1] == 1:
            x = x.squeeze(1)
        if x.dim() != 2:
            raise ValueError(f"expected a waveform of shape (B, L) or (B, 1, L); "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] < self.min_length():
            raise ValueError(f"input of {x.shape[-1]} samples is too short for this model; "
                             f"it needs at least {self.min_length()}")
        if self.normalize:
            x = F.layer_norm(x, x.shape[-1:])
        layers, _ = self.encoder.extract_features(x, num_layers=self.num_layers)
        weights = torch.softmax(self.layer_weights, dim=0)
        mixed = torch.stack(layers, dim=0).mul(weights[:, None, None, None]).sum(dim=0)
        frames = self.frame_proj(mixed)  # (B, T, head_dim)
        pooled = torch.cat([frames.mean(dim=1), frames.std(dim=1, unbiased=False)], dim=1)
        return self.head(self.embedding(self.fc(pooled)))

    def train(self, mode: bool = True) -> SSLDetector:
        """Train the head and the trainable layers; the frozen encoder stays in eval mode
        (no dropout in layers that do not learn)."""
        super().train(mode)
        self.encoder.eval()
        for i in self.trainable:
            self._layers()[i].train(mode)
        return self

    def _layers(self) -> nn.ModuleList:
        """The encoder's transformer layers."""
        return cast(nn.ModuleList, self.encoder.encoder.transformer.layers)

    def min_length(self) -> int:
        """Shortest input (samples): one frame of the convolutional feature extractor."""
        return self._min_length

    def segments(self) -> tuple[str, ...]:
        """Trainable transformer layers below the top one (at most three)."""
        below = self.trainable[:-1]
        if len(below) > 3:
            step = len(below) / 3
            below = [below[int(round(step * (k + 1))) - 1] for k in range(3)]
        return tuple(f"encoder.encoder.transformer.layers.{i}" for i in below)

    # ------------------------------------------------------------------ state

    def _fingerprint(self) -> torch.Tensor:
        """Sum and sum of squares of the frozen weights (float64): tells files apart."""
        total = torch.zeros(2, dtype=torch.float64)
        params = dict(self.named_parameters())
        for name in self._frozen:
            t = params[name].detach().to(torch.float64)
            total += torch.stack([t.sum(), t.pow(2).sum()]).cpu()
        return total

    @staticmethod
    def _drop_frozen(module: nn.Module, state: dict[str, Any], prefix: str,
                     local_metadata: Any) -> None:
        assert isinstance(module, SSLDetector)
        for name in module._frozen:
            state.pop(prefix + name, None)

    def _fill_frozen(self, module: nn.Module, state: dict[str, Any], prefix: str,
                     local_metadata: Any, strict: bool, missing: list[str],
                     unexpected: list[str], errors: list[str]) -> None:
        saved = state.get(prefix + "encoder_fingerprint")
        own = cast(torch.Tensor, self.encoder_fingerprint)
        if isinstance(saved, torch.Tensor) and saved.shape == own.shape and not torch.allclose(
                saved.to(own), own, rtol=1e-9, atol=0.0):
            raise ConfigError(
                f"the saved model was trained on another frozen SSL encoder than "
                f"model.overrides.checkpoint = {self.config.checkpoint}; name the file it "
                "was trained with")
        params = dict(self.named_parameters())
        for name in self._frozen:
            state.setdefault(prefix + name, params[name].detach())


#: The SSL preset, collected by :mod:`cl_spoof.models.presets`.
PRESETS: tuple[Preset, ...] = (
    Preset("ssl", "pretrained SSL encoder (wav2vec 2.0 / XLS-R / HuBERT / WavLM; a local "
           "file) + weighted layer sum + small head", CONFIGS["ssl"], SSLDetector, order=80,
           size=ssl_values),
)
