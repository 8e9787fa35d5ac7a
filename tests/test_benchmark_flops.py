"""The benchmark's FLOP count, checked against torch's own counter on a real forward pass."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

from benchmarks.cpu_throughput import flops_per_row
from benchmarks.random_base_model import tiny_config


def test_conv_and_linear_flops_match_torch_flop_counter() -> None:
    config = tiny_config()
    model = Wav2Vec2ForCTC(config).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 100_000))
    counted = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    ours = flops_per_row(100_000, config)
    assert ours.convolution == pytest.approx(counted["aten.convolution"], rel=1e-3)
    assert ours.linear == pytest.approx(counted["aten.addmm"], rel=1e-3)  # the counter leaves out SDPA attention


def test_base_size_row_is_about_90_gflop() -> None:
    flops = flops_per_row(100_000, Wav2Vec2Config())
    assert flops.convolution / 1e9 == pytest.approx(33.6, abs=0.1)
    assert flops.matmul / 1e9 == pytest.approx(56.8, abs=0.1)
