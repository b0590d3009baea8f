"""``train.feature_cache``: the frozen prefix's features computed once per clip give the
same outputs and the same training as the whole network, and are never reused for
other audio or other prefix weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from avalanche.training import Naive

from cl_spoof.config import config_from_dict, load_config, with_overrides
from cl_spoof.errors import ConfigError
from cl_spoof.models import build_model
from cl_spoof.models.base import Detector
from cl_spoof.training import FeatureCachePlugin, FreezePlugin
from cl_spoof.training.feature_cache import prefix_digest
from cl_spoof.workflows.trainer import Trainer
from tests.helpers.configs import tiny_config
from tests.helpers.encoders import tiny_ssl_overrides

#: AASIST's layers after its prefix (sinc front end, first_bn, encoder).
AASIST_SUFFIX = ("pos_S", "master*", "GAT_layer_*", "HtrgGAT_*", "pool_*", "out_layer")
LENGTH = 2400  # tiny_aasist needs 2219 samples


def _model(name: str, tmp: Path) -> Detector:
    torch.manual_seed(0)
    if name == "ssl":
        return build_model("ssl", **tiny_ssl_overrides(tmp))
    return build_model(name)


def _trainable(name: str) -> tuple[str, ...]:
    return {"tiny_aasist": AASIST_SUFFIX, "tiny": ("pre_gru", "gru", "head"), "ssl": ()}[name]


@pytest.mark.parametrize("name", ["tiny_aasist", "tiny", "ssl"])
def test_forward_is_the_suffix_of_the_prefix(name: str, tmp_path: Path) -> None:
    model = _model(name, tmp_path).eval()
    x = torch.randn(3, LENGTH)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_suffix(model.forward_prefix(x)))


def _stream(n: int = 12, length: int = LENGTH, seed: int = 1, experiences: int = 1) -> Any:
    from avalanche.benchmarks import benchmark_from_datasets
    from avalanche.benchmarks.utils import as_classification_dataset
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, length, generator=g) * 0.1, torch.arange(n) % 2
    data = TensorDataset(x, y)
    data.targets = y.tolist()  # type: ignore[attr-defined]
    if experiences == 1:
        return benchmark_from_datasets(train=[as_classification_dataset(data)],
                                       test=[as_classification_dataset(data)])
    from avalanche.benchmarks.utils import DataAttribute
    from avalanche.benchmarks.utils.classification_dataset import (
        TaskAwareSupervisedClassificationDataset,
    )
    from avalanche.benchmarks.utils.data_attribute import TaskLabels
    from avalanche.benchmarks.utils.flat_data import ConstantSequence

    def task_aware() -> Any:  # items (x, y, task label 0), as DFWF's teacher needs
        return TaskAwareSupervisedClassificationDataset(
            [data], data_attributes=[DataAttribute(y.tolist(), "targets"),
                                     TaskLabels(ConstantSequence(0, n))])

    return benchmark_from_datasets(train=[task_aware() for _ in range(experiences)],
                                   test=[task_aware()])


def _train(name: str, tmp: Path, cached: bool, epochs: int = 3
           ) -> tuple[dict[str, torch.Tensor], torch.Tensor, FeatureCachePlugin | None]:
    """Weights after ``epochs`` epochs from the same start and data order, and the logits of
    the clips afterwards, with or without the cache."""
    model = _model(name, tmp)
    bm = _stream()
    trainable = _trainable(name)
    plugins: list[Any] = [FreezePlugin(trainable, pretrained=True)] if trainable else []
    cache = FeatureCachePlugin(trainable) if cached else None
    if cache is not None:
        cache.check(model)
        plugins.append(cache)
    torch.manual_seed(5)
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                     train_mb_size=4, train_epochs=epochs, eval_mb_size=5, plugins=plugins,
                     evaluator=None)
    strategy.train(bm.train_stream[0], num_workers=0)
    strategy.eval(bm.test_stream)  # evaluation served from the cache too
    model.eval()
    x = torch.stack([bm.test_stream[0].dataset[i][0] for i in range(12)])
    with torch.no_grad():
        logits = model(x)
    return {k: v.clone() for k, v in model.state_dict().items()}, logits, cache


@pytest.fixture
def one_thread() -> Any:
    """One intra-op thread (the sums of a multi-threaded kernel may be split by batch)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["tiny_aasist", "ssl"])
def test_training_with_the_cache_equals_training_without(name: str, tmp_path: Path,
                                                         one_thread: None) -> None:
    plain, plain_logits, _ = _train(name, tmp_path, cached=False)
    cached, cached_logits, cache = _train(name, tmp_path, cached=True)
    assert cache is not None
    # 12 clips: all computed in epoch 1, served in epochs 2 and 3 and in the evaluation of
    # the same clips (a frozen prefix computes the same in training and in evaluation).
    assert cache.cache.hits == 36 and cache.cache.misses == 12, vars(cache.cache)
    changed = 0
    start = _model(name, tmp_path).state_dict()
    for key, value in plain.items():
        assert torch.equal(cached[key], value), key
        changed += not torch.equal(value, start[key])
    assert changed > 0
    assert torch.equal(cached_logits, plain_logits)


@pytest.mark.parametrize("method", ["dfwf", "rego"])
def test_a_teacher_and_the_passes_between_experiences_are_served(
        method: str, tmp_path: Path, one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """DFWF's teacher (a frozen copy with the same prefix) and RegO's pass over a learnt
    experience read the cache: after the first epoch no prefix is computed again, and
    training ends where it ends without the cache."""
    from cl_spoof.models.aasist import AASIST
    from cl_spoof.strategies.methods.dfwf.plugin import DFWFPlugin
    from cl_spoof.strategies.methods.rego.plugin import RegOPlugin

    calls: list[int] = []
    real = AASIST.forward_prefix

    def counted(self: AASIST, x: torch.Tensor) -> torch.Tensor:
        calls.append(len(x))
        return real(self, x)

    monkeypatch.setattr(AASIST, "forward_prefix", counted)

    def train(cached: bool) -> tuple[dict[str, torch.Tensor], int]:
        model = _model("tiny_aasist", tmp_path)
        method_plugin = DFWFPlugin() if method == "dfwf" else RegOPlugin(bonafide_class=1)
        plugins: list[Any] = [FreezePlugin(AASIST_SUFFIX, pretrained=True)]
        if cached:
            plugins.append(FeatureCachePlugin(AASIST_SUFFIX))
        torch.manual_seed(5)
        strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                         train_mb_size=4, train_epochs=2, eval_mb_size=5,
                         plugins=[*plugins, method_plugin], evaluator=None)
        calls.clear()
        for experience in _stream(experiences=2).train_stream:
            strategy.train(experience, num_workers=0)
        return {k: v.clone() for k, v in model.state_dict().items()}, sum(calls)

    plain, computed_plain = train(cached=False)
    cached, computed = train(cached=True)
    for key, value in plain.items():
        assert torch.equal(cached[key], value), key
    assert computed == 12 < computed_plain  # each clip once, in the first epoch


def test_a_cache_folder_is_found_again_by_another_process(tmp_path: Path) -> None:
    """Rows written under a folder serve a later cache (another run, another process)
    with the same prefix weights; other weights never read them."""
    model = _model("tiny_aasist", tmp_path).eval()
    x = torch.randn(4, LENGTH)
    first = FeatureCachePlugin(AASIST_SUFFIX, folder=tmp_path / "features").cache
    first.use_prefix(prefix_digest(model))
    with torch.no_grad():
        out = first.features(model, x)
    rows = sorted((tmp_path / "features").rglob("*.pt"))
    assert len(rows) == 4 and not list((tmp_path / "features").rglob("*.tmp"))
    later = FeatureCachePlugin(AASIST_SUFFIX, folder=tmp_path / "features").cache
    later.use_prefix(prefix_digest(model))
    with torch.no_grad():
        again = later.features(model, x)
    assert torch.equal(again, out) and (later.hits, later.misses, later.disk_hits) == (4, 0, 4)
    rows[0].write_bytes(b"damaged")  # a damaged row is computed and written again
    model.out_layer.weight.data += 1  # the suffix: same prefix digest
    fresh = FeatureCachePlugin(AASIST_SUFFIX, folder=tmp_path / "features").cache
    fresh.use_prefix(prefix_digest(model))
    with torch.no_grad():
        torch.testing.assert_close(fresh.features(model, x), out, rtol=0, atol=1e-5)
    assert (fresh.misses, fresh.disk_hits) == (1, 3)
    model.first_bn.running_mean += 0.1  # other prefix weights: nothing read from disk
    other = FeatureCachePlugin(AASIST_SUFFIX, folder=tmp_path / "features").cache
    other.use_prefix(prefix_digest(model))
    with torch.no_grad():
        other.features(model, x)
    assert (other.misses, other.disk_hits) == (4, 0)
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_other_audio_and_other_prefix_weights_are_computed_again(tmp_path: Path) -> None:
    model = _model("tiny_aasist", tmp_path).eval()
    plugin = FeatureCachePlugin(AASIST_SUFFIX)
    cache = plugin.cache
    x = torch.randn(4, LENGTH)
    cache.use_prefix(prefix_digest(model))
    with torch.no_grad():
        first = cache.features(model, x)
        assert (cache.hits, cache.misses) == (0, 4)
        assert torch.equal(cache.features(model, x), first) and cache.hits == 4
        y = x.clone()
        y[2, 100] += 1e-3  # one sample of one clip: that clip only is computed again
        again = cache.features(model, y)
        assert (cache.hits, cache.misses) == (7, 5)
        # The changed clip was computed alone: equal up to the last bits of a batch of 1.
        torch.testing.assert_close(again, model.forward_prefix(y), rtol=0, atol=1e-5)
        assert not torch.allclose(again[2], first[2], rtol=0, atol=1e-7)
        assert torch.equal(again[[0, 1, 3]], first[[0, 1, 3]])
        # A prefix weight changes: another digest, every entry dropped.
        old = prefix_digest(model)
        model.encoder[0][0].conv1.weight.data[0, 0, 0, 0] += 0.5
        assert prefix_digest(model) != old
        model.first_bn.running_mean += 0.1  # buffers count too
        changed = prefix_digest(model)
        cache.use_prefix(changed)
        assert len(cache) == 0
        fresh = cache.features(model, x)
        assert not torch.allclose(fresh, first) and torch.equal(fresh, model.forward_prefix(x))
        # A suffix weight does not touch the prefix's digest.
        model.out_layer.weight.data += 1
        assert prefix_digest(model) == changed


def test_the_memory_bound_holds() -> None:
    model = build_model("tiny_aasist").eval()
    plugin = FeatureCachePlugin(AASIST_SUFFIX, max_mb=300 / 2**20)  # 300 bytes
    plugin.cache.use_prefix(prefix_digest(model))
    x = torch.randn(3, LENGTH)
    with torch.no_grad():
        out = plugin.cache.features(model, x)  # 128 bytes a clip: two fit
        assert len(plugin.cache) == 2 and plugin.cache.full == 1
        assert plugin.cache.nbytes == 256 <= plugin.cache.max_bytes
        again = plugin.cache.features(model, x)
    assert plugin.cache.hits == 2 and len(plugin.cache) == 2
    torch.testing.assert_close(again, out, rtol=0, atol=1e-5)


def test_a_watched_prefix_layer_runs_the_whole_network() -> None:
    model = build_model("tiny_aasist").eval()
    plugin = FeatureCachePlugin(AASIST_SUFFIX)
    plugin.cache.use_prefix(prefix_digest(model))
    seen: list[int] = []
    handle = model.encoder[1].register_forward_hook(lambda m, i, o: seen.append(1))
    with torch.no_grad():
        for _ in range(2):
            plugin.cache.features(model, torch.ones(2, LENGTH))
    handle.remove()
    assert seen == [1, 1] and plugin.cache.bypassed == 2 and len(plugin.cache) == 0


# ------------------------------------------------------------------ the config


def _cfg(tiny_corpus: Path, tmp_path: Path, model: dict[str, Any] | None = None,
         **train: Any) -> Any:
    cfg = load_config(tiny_config(tiny_corpus, tmp_path))
    return with_overrides(cfg, model=model or {"preset": "tiny_aasist"},
                          data={"num_samples": LENGTH},
                          train={"feature_cache": True, "augment": None,
                                 "trainable": list(AASIST_SUFFIX), **train})


@pytest.mark.parametrize("train, model, message", [
    ({"trainable": []}, None, r"train\.feature_cache: nothing of the model's prefix "
     r"\(sinc, first_bn, encoder\) is frozen"),
    ({"trainable": [*AASIST_SUFFIX, "encoder.5"]}, None,
     r"train\.feature_cache: train\.trainable lets encoder\.5\.0\.conv1\.weight \(and \d+ "
     r"more\) learn, inside the prefix"),
    ({}, {"preset": "tiny_aasist", "overrides": {"freq_mask": 2}},
     r"train\.feature_cache: model\.overrides\.freq_mask > 0"),
    ({"trainable": ["head"]}, {"preset": "tiny", "overrides": {"stats_dim": 4}},
     r"train\.feature_cache: model\.overrides\.stats_dim > 0"),
    ({"trainable": ["*"]}, {"preset": "tiny_lfcc_lcnn"},
     r"train\.feature_cache: \w+ declares no prefix"),
])
def test_a_cache_that_cannot_apply_is_a_one_line_error(
        train: dict[str, Any], model: dict[str, Any] | None, message: str, tiny_corpus: Path,
        tmp_path: Path) -> None:
    from cl_spoof.infra.context import RunContext

    cfg = _cfg(tiny_corpus, tmp_path, model, **train)
    with pytest.raises(ConfigError, match=message) as err:
        Trainer.build(cfg, RunContext.local("cpu"))
    assert "\n" not in str(err.value)


def test_a_cache_folder_needs_the_cache_and_is_relative_to_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^train\.feature_cache_dir: set only with "
                       r"train\.feature_cache: true"):
        config_from_dict({"train": {"feature_cache_dir": "features"}})
    (tmp_path / "c.yaml").write_text("train: {feature_cache: true, augment: null, "
                                     "feature_cache_dir: features}\n")
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.train.feature_cache_dir == str(tmp_path / "features")


def test_augmentation_that_changes_the_input_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^train\.feature_cache: train\.augment changes "
                       r"every training clip.*set train\.augment: null"):
        config_from_dict({"train": {"feature_cache": True}})  # RawBoost by default
    config_from_dict({"train": {"feature_cache": True, "augment": None}})
    config_from_dict({"train": {"feature_cache": True, "augment": {"p_rawboost": 0.0}}})


def test_a_run_serves_its_frozen_prefix(tiny_corpus: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """From the second stage on (the prefix frozen), every epoch after the first is
    served; stage 1 trains everything, so it runs the whole network."""
    from cl_spoof.workflows.run import run_experiment

    cfg = _cfg(tiny_corpus, tmp_path, epochs=2)
    seen: list[FeatureCachePlugin] = []

    class Spy(FeatureCachePlugin):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            seen.append(self)

    monkeypatch.setattr("cl_spoof.workflows.trainer.FeatureCachePlugin", Spy)
    run_experiment(cfg, tmp_path / "run")
    cache = seen[-1].cache
    assert cache.hits > 0 and cache.misses > 0 and cache.bypassed == 0
    before = torch.load(tmp_path / "run" / "checkpoints" / "stage_1.pt", weights_only=True)
    after = torch.load(tmp_path / "run" / "checkpoints" / "stage_2.pt", weights_only=True)
    for key, value in before["model_state"].items():
        if key.startswith(("sinc", "first_bn", "encoder")):
            assert torch.equal(value, after["model_state"][key]), key


def test_training_crops_come_from_the_grid() -> None:
    import numpy as np

    from cl_spoof.benchmark.datasets import RandomCrop

    wave = np.arange(100, dtype=np.float32)
    torch.manual_seed(0)
    starts = {int(RandomCrop(40, offsets=3)(wave)[0]) for _ in range(60)}
    assert starts == {0, 30, 60}
    assert {int(RandomCrop(40, offsets=1)(wave)[0]) for _ in range(5)} == {0}
    short = RandomCrop(40, offsets=3)(np.arange(10, dtype=np.float32))
    assert short.tolist() == list(range(10)) * 4
