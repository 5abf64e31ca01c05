"""Model size and cost: parameters, and FLOPs per predicted frame through the shared rollout engine.

``count_flops`` runs one :func:`ganlstm.rollout.rollout` (context warm-up, then closed-loop
steps) under :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the
convolutions and matrix products (elementwise ops, norms and activations are left out) and
counts a **multiply-add as 2 FLOPs**. Tables that use fvcore's ``FlopCountAnalysis`` (OpenSTL's
do) count a multiply-add as 1, so their "FLOPs" are half of ours for the same network.

The count covers everything a forecast costs: the context steps as well as the predicted
ones, divided by the predicted frames. Building the model on the ``meta`` device gives the
same count without computing anything (the shapes are all the counter needs).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from .models.base import Forecaster


def _cpu_attention_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward_flop(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: torch's counter knows the fused attention kernels of CUDA but not the CPU one (torch 2.13), which
#: ``scaled_dot_product_attention`` (E3D-LSTM's recall gate) runs on a CPU: counted like the others.
_FUSED_ATTENTION = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flop,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward_flop,
}


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_flops(model: Forecaster, context: int | Tensor = 10, horizon: int = 10) -> float:
    """GFLOP per predicted frame (multiply-add = 2) of a rollout of ``horizon`` frames after ``context``.

    ``context`` is a batch (B, J, C, H, W) in [-1, 1], or a number of frames J (one sample
    of zeros at the model's ``cfg`` size, on the model's device). The total of the rollout,
    context steps included, is divided by ``B * horizon``.
    """
    from .rollout import model_device, rollout

    if isinstance(context, int):
        cfg = model.cfg
        context = torch.zeros(1, context, cfg.channels, cfg.image_size, cfg.image_size, device=model_device(model))
    counter = FlopCounterMode(display=False, custom_mapping=_FUSED_ATTENTION)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            rollout(model, context, horizon)
    finally:
        model.train(was_training)
    return counter.get_total_flops() / (context.shape[0] * horizon) / 1e9
