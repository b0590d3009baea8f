"""Front ends (conv, sinc, spec), the sample rate of models, and the learning-rate schedule."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from cl_spoof.config import config_from_dict, load_config
from cl_spoof.errors import ConfigError
from cl_spoof.models import build_model, count_parameters
from cl_spoof.models.frontends import SincFrontEnd, SpecFrontEnd
from cl_spoof.training import LRSchedule, lr_factor

torch.set_num_threads(1)


@pytest.mark.parametrize(("scale", "bands", "channels"),
                         [("bins", 0, 257), ("linear", 40, 40), ("mel", 24, 24)])
def test_spec_front_end_shapes_and_gradients(scale: str, bands: int, channels: int) -> None:
    fe = SpecFrontEnd(512, 128, 16_000, scale, bands)
    x = torch.randn(3, 1, 8_000, requires_grad=True)
    y = fe(x)
    assert y.shape == (3, channels, (8_000 - 512) // 128 + 1)
    y.square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in fe.parameters())
    assert not any(p.requires_grad for n, p in fe.named_parameters() if "tail" not in n)


@pytest.mark.parametrize("learnable", [False, True])
def test_sinc_front_end_shapes_and_gradients(learnable: bool) -> None:
    fe = SincFrontEnd(16, 129, 16_000, stride=4, pool=2, learnable=learnable)
    x = torch.randn(2, 1, 8_000, requires_grad=True)
    y = fe(x)
    assert y.shape == (2, 16, ((8_000 - 129) // 4 + 1) // 2)
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    assert fe.low_hz.requires_grad is learnable and fe.band_hz.requires_grad is learnable
    if learnable:  # torch.sinc: finite gradients at the filter centre, no NaN
        assert torch.isfinite(fe.low_hz.grad).all() and fe.low_hz.grad.abs().sum() > 0
        assert torch.isfinite(fe.band_hz.grad).all()


def test_sinc_filters_pass_their_band() -> None:
    fe = SincFrontEnd(8, 513, 16_000)
    h = fe.filters()[:, 0].detach()
    resp = torch.fft.rfft(h, 4096).abs()
    freqs = torch.fft.rfftfreq(4096, 1 / 16_000)
    for i in range(8):
        lo, hi = float(fe.low_hz[i]), float(fe.low_hz[i] + fe.band_hz[i])
        centre = resp[i, ((freqs > lo + 0.2 * (hi - lo)) & (freqs < hi - 0.2 * (hi - lo)))]
        assert centre.mean() == pytest.approx(1.0, abs=0.1)  # unit gain in the pass band
        far = resp[i, (freqs > hi + 1_000) | (freqs < max(0.0, lo - 1_000))]
        assert far.numel() == 0 or far.max() < 0.05


@pytest.mark.parametrize("overrides", [
    {},  # small: every bin of a 64-ms spectrum
    {"frontend": "sinc", "front_channels": 20, "front_kernel": 129, "front_stride": 4,
     "front_pool": 2, "block_pools": (2, 2, 2)},
    {"frontend": "spec", "spec_scale": "mel", "front_channels": 40, "spec_win_ms": 25,
     "spec_hop_ms": 10},
    {"frontend": "conv", "front_stride": 8, "block_pools": (4, 4, 3)},
])
@pytest.mark.parametrize("sample_rate", [16_000, 24_000])
def test_models_at_any_sample_rate(overrides: dict, sample_rate: int) -> None:
    torch.manual_seed(0)
    model = build_model("small", sample_rate=sample_rate, **overrides)
    config = model.config
    seen: list[int] = []
    model.gru.register_forward_hook(lambda _m, inp, _o: seen.append(inp[0].shape[1]))
    for length in (config.min_length(), sample_rate):
        logits = model(torch.randn(2, length))
        assert logits.shape == (2, 2) and torch.isfinite(logits).all()
        assert seen[-1] == config.num_frames(length) >= 1
    assert config.num_frames(config.min_length() - 1) == 0
    loss = model(torch.randn(2, sample_rate)).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_spec_channels_follow_the_sample_rate() -> None:
    """Frames are defined in ms: 64 ms = 1024 samples at 16 kHz (513 bins), 1536 at 24 kHz."""
    assert build_model("small", sample_rate=16_000).config.front_out_channels == 513
    assert build_model("small", sample_rate=24_000).config.front_out_channels == 769
    assert count_parameters(build_model("small", sample_rate=24_000)) == 95_972


def test_sample_rate_is_data_not_an_override() -> None:
    with pytest.raises(ConfigError, match="data.sample_rate"):
        config_from_dict({"model": {"overrides": {"sample_rate": 24_000}}})
    with pytest.raises(ConfigError, match="model.frontend"):
        build_model("small", frontend="cqt")
    with pytest.raises(ConfigError, match="spec_scale"):
        build_model("small", spec_scale="bark")


def test_demo_config_keeps_the_tuned_demo_model() -> None:
    """configs/demo.yaml spells out the model its README tables were measured with: the
    learnable strided conv, hop 8, pools (4, 4, 3), mean-pooled GRU (47,026 parameters,
    the parameter names of earlier checkpoints)."""
    cfg = load_config(None)
    model = build_model(cfg.model.preset, sample_rate=cfg.data.sample_rate,
                        **cfg.model.overrides)
    assert count_parameters(model) == 47_026
    assert isinstance(model.front, torch.nn.Sequential)
    assert model.front[0].stride == (8,) and model.config.block_pools == (4, 4, 3)
    assert model.config.pooling == "mean"
    assert (cfg.train.augment, cfg.train.lr_schedule, cfg.data.level) == (None, "constant", "none")


def test_lr_factor_shapes() -> None:
    assert lr_factor("constant", 7, 10, 3) == 1.0
    assert lr_factor("cosine", 0, 100, 10) == pytest.approx(0.1)
    assert lr_factor("cosine", 5, 100, 10) == pytest.approx(0.55)
    assert lr_factor("cosine", 10, 100, 10) == pytest.approx(1.0)
    assert lr_factor("cosine", 55, 100, 10, final=0.0) == pytest.approx(0.5)
    assert lr_factor("cosine", 100, 100, 10, final=0.01) == pytest.approx(0.01)
    assert lr_factor("exponential", 10 + 20, 100, 10, gamma=0.9, steps_per_epoch=10) == \
        pytest.approx(0.81)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("step", 0, 10)


def test_lr_schedule_plugin_restarts_every_experience() -> None:
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    strategy = SimpleNamespace(dataloader=range(10), train_epochs=3, optimizer=opt)
    plugin = LRSchedule("cosine", 1e-3, warmup_epochs=1, final=0.01)
    for _ in range(2):  # two experiences
        plugin.before_training_exp(strategy)
        rates = []
        for _ in range(30):
            plugin.before_training_iteration(strategy)
            rates.append(opt.param_groups[0]["lr"])
        assert rates[0] == pytest.approx(1e-4)
        assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) == 10
        assert 1e-5 < rates[-1] < 2e-5  # the last step is one short of the floor
        assert all(a >= b for a, b in zip(rates[10:], rates[11:], strict=False))
