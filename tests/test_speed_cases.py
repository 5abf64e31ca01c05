"""benchmarks/speed_cases.py's OpenSTL ConvLSTM: shapes, parameter count and FLOP formula, at a tiny size."""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from speed_cases import OpenStlConvLstm, flops, openstl_flops, openstl_params  # noqa: E402


def test_openstl_convlstm_shapes_parameters_and_flops():
    tiny = dict(channels=1, patch=4, hidden=(8, 6), kernel=3)
    model = OpenStlConvLstm(**tiny).eval()
    assert sum(p.numel() for p in model.parameters()) == openstl_params(**tiny)
    x = torch.rand(2, 3, 1, 32, 32)
    with torch.inference_mode():
        y = model(x, 4)
    assert y.shape == (2, 4, 1, 32, 32)
    assert flops(lambda: model(x, 4)) == 2 * openstl_flops(32, 3, 4, **tiny)  # 3 + 4 - 1 steps, two samples


def test_the_moving_mnist_configuration():
    # 4 x 128 channels, 5 x 5, patches of 4: 11.68M parameters used, 15.08M with OpenSTL's uncalled conv_o / conv_last
    assert openstl_params() == 11_675_648
    assert openstl_params(unused=True) == 15_083_520
    assert round(openstl_flops(64, 10, 10) / 10 / 1e9, 2) == 11.36  # GFLOP per predicted frame, 10 -> 10 (issue 21)
