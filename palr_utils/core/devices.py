"""Where models run: the GPU when there is one, else the CPU, and whether bf16 is fast there.

A low-level module (torch only): retrievers, the LLM and the trainers all ask it.
"""

from __future__ import annotations

import contextlib
import os

import torch


def cpu_supports_bf16() -> bool:
    """bf16 matmuls are fast on CPUs with AVX512-BF16 or AMX; elsewhere they are emulated and slow.

    ``PALR_CPU_BF16=0`` in the environment answers no on any CPU: the float32 path that CPUs without bf16 units
    take, to time it (with ``ATEN_CPU_CAPABILITY=avx2``, as on an AVX2-only laptop) or to rule bf16 out.
    """
    if os.environ.get("PALR_CPU_BF16") == "0":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or "auto": :func:`default_device`; otherwise the device named (a clear error if it is absent)."""
    if device is None or device == "auto":
        return default_device()
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was asked for, but torch sees no GPU here; use 'cpu' or 'auto'")
    return device


def bf16_autocast(device: torch.device, enabled: bool):
    """bf16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
