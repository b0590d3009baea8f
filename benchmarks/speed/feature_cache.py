"""Epoch time with and without ``train.feature_cache``, from the second epoch on.

For frozen-encoder AASIST-L, AASIST (the layers ``train.trainable`` names in the index
entry ``feature_cache`` learn: the graph part and the output layer; the sinc front end
and the residual encoder are frozen) and ``ssl`` (a small random-weight wav2vec 2.0
encoder, frozen; the head learns), one process trains naive fine-tuning for a few
epochs on the same synthetic clips (Gaussian noise, fixed seed) with and without the
cache, and times every epoch. The cache computes each clip's prefix in the first
epoch, so the ratio is taken over the later epochs. Target: >= 10x. Usage::

    python -m benchmarks.speed.feature_cache --ablation feature_cache [--clips 16]
        [--seconds 1.0] [--models aasist_l,aasist,ssl]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torchaudio  # noqa: E402
from avalanche.benchmarks import benchmark_from_datasets  # noqa: E402
from avalanche.benchmarks.utils import as_classification_dataset  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402
from avalanche.training import Naive  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from benchmarks import index  # noqa: E402
from benchmarks._common import write_result  # noqa: E402
from cl_spoof.models import build_model  # noqa: E402
from cl_spoof.models.base import Detector  # noqa: E402
from cl_spoof.training import FeatureCachePlugin, FreezePlugin  # noqa: E402

SAMPLE_RATE = 16_000

#: The small random-weight SSL encoder: wav2vec 2.0 Base's feature-extractor strides
#: (hop 320 samples) at 256 channels (Base: 512), 6 transformer layers of 256 dims (Base:
#: 12 of 768).
SSL_ENCODER: dict[str, Any] = dict(
    extractor_mode="group_norm",
    extractor_conv_layer_config=[[256, 10, 5]] + [[256, 3, 2]] * 4 + [[256, 2, 2]] * 2,
    extractor_conv_bias=False, encoder_embed_dim=256, encoder_projection_dropout=0.0,
    encoder_pos_conv_kernel=64, encoder_pos_conv_groups=8, encoder_num_layers=6,
    encoder_num_heads=4, encoder_attention_dropout=0.0, encoder_ff_interm_features=1024,
    encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
    encoder_layer_drop=0.0, aux_num_out=None)


class EpochTimer(SupervisedPlugin):
    """Wall time of every training epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        self._t0 = time.perf_counter()

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter() - self._t0)


def _model(name: str, tmp: Path) -> Detector:
    torch.manual_seed(0)
    if name != "ssl":
        return build_model(name)
    encoder = torchaudio.models.wav2vec2_model(**SSL_ENCODER)
    path = tmp / "encoder.pt"
    torch.save(encoder.state_dict(), path)
    return build_model("ssl", checkpoint=str(path), architecture="custom_wav2vec2",
                       encoder_params=SSL_ENCODER, head_dim=64)


def _epochs(name: str, trainable: tuple[str, ...], cached: bool, clips: int, samples: int,
            batch: int, epochs: int) -> tuple[list[float], dict[str, int]]:
    """Epoch times of naive fine-tuning with the prefix frozen, with or without the cache."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(name, Path(tmp))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(clips, samples, generator=g) * 0.1, torch.arange(clips) % 2
    data = TensorDataset(x, y)
    data.targets = y.tolist()  # type: ignore[attr-defined]
    stream = benchmark_from_datasets(train=[as_classification_dataset(data)]).train_stream
    trainable = trainable if name != "ssl" else ()  # ssl: the model freezes its encoder
    timer = EpochTimer()
    plugins: list[Any] = [FreezePlugin(trainable, pretrained=True)] if trainable else []
    cache = FeatureCachePlugin(trainable) if cached else None
    if cache is not None:
        cache.check(model)
        plugins.append(cache)
    strategy = Naive(model=model, optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                     train_mb_size=batch, train_epochs=epochs, plugins=[*plugins, timer],
                     evaluator=None)
    strategy.train(stream[0], num_workers=0)
    stats = {} if cache is None else {"hits": cache.cache.hits, "misses": cache.cache.misses}
    return timer.times, stats


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--ablation", default="feature_cache",
                    help="index entry whose train.trainable the AASIST models use")
    ap.add_argument("--models", default="aasist_l,aasist,ssl")
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.0, help="clip length")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3, help="epochs with the cache (the run "
                    "without it stops after its second)")
    args = ap.parse_args(argv)
    trainable = tuple(index.ablation_config(args.ablation).train.trainable)
    samples = int(args.seconds * SAMPLE_RATE)
    rows: dict[str, Any] = {
        "data": f"{args.clips} synthetic clips (Gaussian noise, std 0.1) of {samples} "
                f"samples at {SAMPLE_RATE} Hz, batch {args.batch}, naive fine-tuning",
        "trainable": list(trainable), "models": {}}
    for name in args.models.split(","):
        plain, _ = _epochs(name, trainable, False, args.clips, samples, args.batch, 2)
        cached, stats = _epochs(name, trainable, True, args.clips, samples, args.batch,
                                args.epochs)
        later = sum(cached[1:]) / len(cached[1:])
        ratio = plain[1] / later
        rows["models"][name] = {
            "epoch_s_without": [round(t, 3) for t in plain],
            "epoch_s_with": [round(t, 3) for t in cached], **stats,
            "ratio_from_epoch_2": round(ratio, 1)}
        print(f"{name}: epoch 2 without the cache {plain[1]:.2f} s, with it {later:.3f} s "
              f"(epoch 1: {cached[0]:.2f} s) -> {ratio:.1f}x (target >= 10x)")
    rows["target_ratio"] = 10
    print(f"-> {write_result('feature_cache', rows)}")


if __name__ == "__main__":
    main()
