"""GPU kernels, importable as ``intrinsic.kernels`` (this folder is mapped there by pyproject).

Written in Triton, compiled just in time on first use and cached by Triton; nothing is built at
install time. On a machine without a GPU they run under Triton's interpreter
(``TRITON_INTERPRET=1``), which is how the tests check their logic on CPU.

* ``hadamard.hadamard_rows``: the Walsh–Hadamard transform of each row;
* ``fastfood.fastfood_forward`` / ``fastfood_transpose``: one-pass Fastfood P θ_d and Pᵀ g with
  the random state regenerated in registers.

:func:`unavailable_reason` says, before anything is imported, why they cannot run somewhere.
"""

from __future__ import annotations

import os

import torch


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device``, or None if they can."""
    if device.type != "cuda" and not (device.type == "cpu" and interpreting()):
        return f"Triton kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1), not on {device.type}"
    try:
        import triton  # noqa: F401
    except Exception as error:  # ImportError, or a triton built for another torch
        return f"triton does not import ({error.__class__.__name__}: {error}); pip install triton"
    return None
