"""The ``ssl`` preset: a torchaudio SSL encoder loaded only from a local file, plus a head."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torchaudio

from cl_spoof.errors import ConfigError
from cl_spoof.models import build_model, count_parameters
from cl_spoof.models.ssl import SSLConfig, SSLDetector
from tests.helpers.encoders import TINY_PARAMS, save_tiny_encoder, tiny_ssl_overrides

torch.set_num_threads(1)

def test_loads_the_file_through_the_real_path(tmp_path: Path) -> None:
    overrides = tiny_ssl_overrides(tmp_path)
    model = build_model("ssl", **overrides)
    assert isinstance(model, SSLDetector)
    saved = torch.load(overrides["checkpoint"], weights_only=True)
    for name, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, saved[name], msg=name)
    logits = model.eval()(torch.randn(3, 4000))
    assert logits.shape == (3, 2)
    assert model.min_length() == 30  # (((1 - 1) * 2 + 2 - 1) * 2 + 3 - 1) * 5 + 10
    model(torch.randn(1, 30))
    with pytest.raises(ValueError, match="too short"):
        model(torch.randn(1, 29))


def test_frozen_or_top_layers_trainable(tmp_path: Path) -> None:
    frozen = build_model("ssl", **tiny_ssl_overrides(tmp_path))
    head_only = count_parameters(frozen)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert frozen.segments() == ()
    top2 = build_model("ssl", **tiny_ssl_overrides(tmp_path, trainable_layers=2))
    layers = top2.encoder.encoder.transformer.layers
    assert [any(p.requires_grad for p in layer.parameters()) for layer in layers] == \
        [False, False, True, True]
    assert count_parameters(top2) == head_only + sum(
        p.numel() for layer in layers[2:] for p in layer.parameters())
    assert top2.segments() == ("encoder.encoder.transformer.layers.2",)
    # The frozen encoder stays in eval mode (no dropout) while the model trains.
    top2.train()
    assert not top2.encoder.feature_extractor.training and not layers[0].training
    assert layers[3].training and top2.head.training
    # Gradients reach the trainable layers and the weighted layer sum, never frozen ones.
    top2(torch.randn(2, 2000)).sum().backward()
    assert top2.layer_weights.grad is not None and layers[3].attention.k_proj.weight.grad \
        is not None
    assert layers[0].attention.k_proj.weight.grad is None


def test_num_layers_uses_the_first_layers(tmp_path: Path) -> None:
    model = build_model("ssl", **tiny_ssl_overrides(tmp_path, num_layers=2))
    assert model.layer_weights.shape == (2,)
    calls: list[int] = []
    for i, layer in enumerate(model.encoder.encoder.transformer.layers):
        layer.register_forward_hook(lambda *_a, i=i: calls.append(i))
    model(torch.randn(1, 1000))
    assert calls == [0, 1]


def test_state_dict_leaves_frozen_weights_out_and_reloads(tmp_path: Path) -> None:
    overrides = tiny_ssl_overrides(tmp_path, trainable_layers=1)
    model = build_model("ssl", **overrides).eval()
    state = model.state_dict()
    assert "encoder_fingerprint" in state
    assert not any(k.startswith("encoder.feature_extractor") for k in state)
    assert any(k.startswith("encoder.encoder.transformer.layers.3.") for k in state)
    assert not any(k.startswith("encoder.encoder.transformer.layers.0.") for k in state)
    with torch.no_grad():
        model.head.weight.add_(1.0)
        model.encoder.encoder.transformer.layers[3].feed_forward.output_dense.bias.add_(0.5)
    trained = model.state_dict()
    fresh = build_model("ssl", **overrides).eval()
    fresh.load_state_dict(trained)
    x = torch.randn(2, 3000)
    torch.testing.assert_close(fresh(x), model(x))
    # A frozen copy (DFWF's teacher) loads the same state.
    teacher = copy.deepcopy(fresh).requires_grad_(False)
    teacher.load_state_dict(trained)
    torch.testing.assert_close(teacher(x), model(x))


def test_state_of_another_encoder_file_is_refused(tmp_path: Path) -> None:
    model = build_model("ssl", **tiny_ssl_overrides(tmp_path / "a"))
    other_file = save_tiny_encoder(tmp_path / "b" / "other.pt", seed=1)
    other = build_model("ssl", **{**tiny_ssl_overrides(tmp_path / "a"),
                                  "checkpoint": str(other_file)})
    with pytest.raises(ConfigError, match=r"model\.overrides\.checkpoint"):
        other.load_state_dict(model.state_dict())


def test_missing_or_mismatched_files_are_clear_errors(tmp_path: Path) -> None:
    overrides = tiny_ssl_overrides(tmp_path)
    with pytest.raises(ConfigError, match=r"model\.overrides\.checkpoint.*needs the local file"):
        build_model("ssl")
    with pytest.raises(ConfigError, match=r"model\.overrides\.checkpoint: .*nope\.pt: file not "
                                          r"found .*never downloads"):
        build_model("ssl", **{**overrides, "checkpoint": str(tmp_path / "nope.pt")})
    # A file of another architecture (wider encoder) than the one named.
    wide = save_tiny_encoder(tmp_path / "wide.pt", encoder_embed_dim=32)
    with pytest.raises(ConfigError, match=r"does not fit model\.overrides\.architecture "
                                          r"'custom_wav2vec2'.*another shape"):
        build_model("ssl", **{**overrides, "checkpoint": str(wide)})
    with pytest.raises(ConfigError, match=r"does not fit .*missing"):
        build_model("ssl", **{**overrides, "encoder_params": {**TINY_PARAMS,
                                                               "encoder_num_layers": 5}})
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a readable PyTorch state dict"):
        build_model("ssl", **{**overrides, "checkpoint": str(junk)})
    with pytest.raises(ConfigError, match=r"model\.overrides\.architecture: unknown SSL "
                                          r"architecture 'wav2vec3'"):
        SSLConfig(architecture="wav2vec3")
    with pytest.raises(ConfigError, match=r"encoder_params is only for architecture"):
        SSLConfig(architecture="wav2vec2_base", encoder_params={"encoder_num_layers": 2})
    with pytest.raises(ConfigError, match=r"model\.overrides\.trainable_layers"):
        build_model("ssl", **{**overrides, "trainable_layers": 5})
    with pytest.raises(ConfigError, match=r"model\.overrides\.encoder_params"):
        build_model("ssl", **{**overrides, "encoder_params": {"encoder_num_layers": 2}})


def test_bundle_wrapper_prefix_and_asr_head_are_accepted(tmp_path: Path) -> None:
    # torchaudio's pipeline bundles wrap some encoders (keys "model.*"); ASR ones add "aux".
    torch.manual_seed(0)
    encoder = torchaudio.models.wav2vec2_model(**{**TINY_PARAMS, "aux_num_out": 29})
    state = {f"model.{k}": v for k, v in encoder.state_dict().items()}
    path = tmp_path / "bundle.pt"
    torch.save(state, path)
    model = build_model("ssl", **{**tiny_ssl_overrides(tmp_path), "checkpoint": str(path)})
    torch.testing.assert_close(model.encoder.encoder.transformer.layers[0].attention
                               .k_proj.weight, encoder.encoder.transformer.layers[0]
                               .attention.k_proj.weight)


def test_named_architectures_are_torchaudio_builders() -> None:
    from cl_spoof.models.ssl import ARCHITECTURES

    assert {"wav2vec2_xlsr_300m", "wav2vec2_base", "hubert_base", "wavlm_base",
            "wavlm_large"} <= set(ARCHITECTURES)
    for builder, _normalize in ARCHITECTURES.values():
        assert builder.__module__.startswith("torchaudio.models")


def test_ssl_refuses_another_sample_rate(tmp_path: Path) -> None:
    """The encoders were trained on 16 kHz speech: data.sample_rate 24000 is a config error."""
    with pytest.raises(ConfigError, match=r"data\.sample_rate.*16000"):
        build_model("ssl", sample_rate=24_000, **tiny_ssl_overrides(tmp_path))
    model = build_model("ssl", sample_rate=16_000, **tiny_ssl_overrides(tmp_path)).eval()
    assert model(torch.randn(2, 4000)).shape == (2, 2)
