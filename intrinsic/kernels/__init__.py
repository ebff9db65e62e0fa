"""GPU kernels, importable as ``intrinsic.kernels`` (this folder is mapped there by pyproject).

Written in Triton, compiled just in time on first use and cached by Triton; nothing is built at
install time. On a machine without a GPU they run under Triton's interpreter
(``TRITON_INTERPRET=1``), which is how the tests check their logic on CPU, and
:mod:`intrinsic.kernels.resources` compiles them for GPU targets without a GPU.

* ``hadamard.hadamard_rows``: the Walsh–Hadamard transform of each row;
* ``fastfood.fastfood_forward`` / ``fastfood_transpose``: one-pass Fastfood P θ_d and Pᵀ g with
  the random state regenerated in registers.

Dispatch never lets a kernel crash training. :func:`unavailable_reason` says, before anything
is compiled, why the kernels cannot run somewhere (device, Triton missing, too old, or lacking a
feature they use). Then each *case* (kernel family, device, block size, dtype) is tried once by
:func:`usable` with a probe, a small launch checked against PyTorch; a case whose probe or any
later launch fails is :func:`disable`\\ d: one ``RuntimeWarning``, and PyTorch from then on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable, Hashable

import torch

MIN_TRITON = (3, 2)  # tl.gather, tl.split/join and do_not_specialize as used here
REQUIRED_FEATURES = ("gather", "split", "join", "permute", "static_range")

_case_status: dict[Hashable, str | None] = {}  # case → None (usable) or why it is not


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def on_device(device: torch.device):
    """A context in which Triton launches on ``device`` (its current CUDA device), not device 0."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def unavailable_reason(device: torch.device) -> str | None:
    """Why the Triton kernels cannot run on ``device``, or None if they can."""
    if device.type != "cuda" and not (device.type == "cpu" and interpreting()):
        return f"Triton kernels run on CUDA tensors (or on CPU with TRITON_INTERPRET=1), not on {device.type}"
    return _triton_problem()


@functools.lru_cache(maxsize=1)
def _triton_problem() -> str | None:
    """What keeps the installed Triton from running the kernels (asked once per process)."""
    try:
        import triton
        import triton.language as tl
        from triton.language.extra import libdevice  # noqa: F401
    except Exception as error:  # ImportError, or a triton built for another torch
        return f"triton does not import ({error.__class__.__name__}: {error}); pip install 'triton>=3.2'"
    if _version_tuple(triton.__version__) < MIN_TRITON:
        return f"triton {triton.__version__} is older than {'.'.join(map(str, MIN_TRITON))}; pip install -U triton"
    missing = [name for name in REQUIRED_FEATURES if not hasattr(tl, name)]
    if missing:
        return f"triton {triton.__version__} lacks triton.language.{', '.join(missing)}"
    return None


def usable(case: Hashable, probe: Callable[[], None]) -> bool:
    """Whether ``case`` may use its kernel; the first call runs ``probe`` (which raises on failure)."""
    if case not in _case_status:
        try:
            probe()
        except Exception as error:  # a compile, resource, launch or value error: never fatal
            disable(case, error)
        else:
            _case_status[case] = None
    return _case_status[case] is None


def disable(case: Hashable, error: BaseException) -> None:
    """Send ``case`` to PyTorch from now on, with one warning naming the error."""
    message = f"{error.__class__.__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    _case_status[case] = message
    warnings.warn(f"Triton kernel for {case} failed ({message[:300]}); using PyTorch for it from now on.",
                  RuntimeWarning, stacklevel=3)


def disabled_cases() -> dict[Hashable, str]:
    """Cases sent to PyTorch so far, with the error that did it."""
    return {case: why for case, why in _case_status.items() if why is not None}


def reset_cases() -> None:
    """Forget every probe result (the next use of each case probes again)."""
    _case_status.clear()
