"""Compile every kernel variant the dispatcher can launch for real GPU targets, without a GPU.

Triton compiles for a target it is told about (``triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90, 32))``) with the ptxas it ships, so the CPU-only CI can check what
the interpreter cannot: that each variant compiles, fits the target's shared memory, does not
spill registers, and how many instructions it executes per output entry. Read from the cubin
with the ``cuobjdump`` that ships beside ptxas:

* ``registers``: per thread (``cuobjdump -res-usage``);
* ``spill_instructions``: local-memory loads and stores (``LDL``/``STL``) in the SASS;
* ``shared_bytes``: Triton's shared-memory allocation, against the target's per-block limit;
* ``instructions_per_element``: SASS instructions (NOPs excluded) over the entries each thread
  owns. The forward over whole single-segment blocks has no loop left after unrolling, so its
  static count is its executed count (a skipped block executes a few); the fix-up variant's
  segment walk is counted once (per segment starting inside the block, it runs once more); for
  the transpose the count is one iteration of its block loop.

**The instruction budget.** The fused float32 forward reads θ₀ and writes θ (8 bytes per entry).
An H100 SXM streams 3.35 TB/s, 4.2·10¹¹ entries/s; its 132 SMs issue 4 warp instructions per
clock, 16,896 thread instructions per clock, 2.97·10¹³ per second at a sustained 1.755 GHz. The
kernel is not instruction bound while it executes at most 2.97·10¹³ / 4.2·10¹¹ ≈ 70
instructions per entry (:data:`FUSED_FORWARD_BUDGET`); an A100 (108 SMs, 1.41 GHz, 2.0 TB/s)
gives 76. Issue slots are also shared with address arithmetic and stalls, so the budget is a
ceiling, not a prediction of speed.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field

import torch

FUSED_FORWARD_BUDGET = 70  # instructions per output entry, derived in the module docstring
TARGETS = {"sm_80": 80, "sm_90": 90}
SHARED_MEMORY_LIMIT = {80: 166_912, 90: 232_448}  # bytes per thread block (opt-in maximum)
_TRITON_DTYPE = {torch.float32: "fp32", torch.float64: "fp64", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass(frozen=True)
class Variant:
    """One compiled form of a kernel: its signature types, constexprs and launch width."""

    kernel: str  # "hadamard_rows", "fastfood_norms", "fastfood_forward" or "fastfood_transpose"
    log_block: int
    dtype: torch.dtype  # the compute dtype
    io_dtype: torch.dtype  # of the output and θ₀ (forward) or of g (transpose)
    branch: str  # the constexpr branch: "plain", "with θ₀", "with θ₀, fix-up", "plain, fix-up" or "with λ dots"
    constexprs: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        io = "" if self.io_dtype == self.dtype else f"/{_TRITON_DTYPE[self.io_dtype]}"
        return f"{self.kernel} L=2^{self.log_block} {_TRITON_DTYPE[self.dtype]}{io} {self.branch}"


@dataclass
class Resources:
    """What one variant costs on one target (see module doc)."""

    variant: str
    target: str
    num_warps: int
    registers: int
    spill_instructions: int
    shared_bytes: int
    shared_limit: int
    instructions: int
    instructions_per_element: float

    def as_dict(self) -> dict:
        return asdict(self)


def variants(dtypes=(torch.float32, torch.float64), io_dtypes=(torch.bfloat16, torch.float16)) -> list[Variant]:
    """Every variant the dispatcher can launch: each block size up to the cap of each compute
    dtype, each constexpr branch, and the fused forward's output dtypes (``io_dtypes`` besides
    the compute dtype) at the largest block."""
    from .fastfood import MAX_LOG_BLOCK as FASTFOOD_MAX
    from .hadamard import MAX_LOG_BLOCK as HADAMARD_MAX

    found = []
    for dtype in dtypes:
        for log_l in range(HADAMARD_MAX[dtype] + 1):
            found.append(Variant("hadamard_rows", log_l, dtype, dtype, "plain"))
        top = FASTFOOD_MAX[dtype]
        for log_l in range(top + 1):
            if dtype == torch.float32:  # the norms are float32 for every compute dtype
                found.append(Variant("fastfood_norms", log_l, dtype, dtype, "plain"))
            found.append(Variant("fastfood_forward", log_l, dtype, dtype, "with θ₀"))
            found.append(Variant("fastfood_forward", log_l, dtype, dtype, "with θ₀, fix-up"))
            found.append(Variant("fastfood_transpose", log_l, dtype, dtype, "with λ dots"))
        found.append(Variant("fastfood_forward", top, dtype, dtype, "plain"))
        found.append(Variant("fastfood_forward", top, dtype, dtype, "plain, fix-up"))
        found.append(Variant("fastfood_transpose", top, dtype, dtype, "plain"))
        for io in io_dtypes:
            found.append(Variant("fastfood_forward", top, dtype, io, "with θ₀"))
            found.append(Variant("fastfood_transpose", top, dtype, io, "with λ dots"))
    return found


def _source(variant: Variant):
    """(ASTSource, launch options) for a variant, with the argument types the launchers pass."""
    from triton.compiler import ASTSource

    from . import fastfood, hadamard

    t, io = _TRITON_DTYPE[variant.dtype], _TRITON_DTYPE[variant.io_dtype]
    options = hadamard.launch_options(1 << variant.log_block, variant.dtype)
    if variant.kernel == "hadamard_rows":
        signature = dict(x_ptr=f"*{t}", y_ptr=f"*{t}", inner="i32", outer_stride="i32", inner_stride="i32",
                         elem_stride="i32", LOG_L="constexpr")
        return ASTSource(hadamard._hadamard_rows_kernel, signature, constexprs={"LOG_L": variant.log_block}), options
    constexprs = dict(LOG_L=variant.log_block)
    if variant.kernel == "fastfood_norms":
        signature = dict(norms_ptr="*fp32", streams_ptr="*i32", LOG_L="constexpr")
        return ASTSource(fastfood._block_norms_kernel, signature, constexprs=constexprs), options
    if variant.kernel == "fastfood_forward":
        kernel, types = fastfood._forward_kernel, dict(u_ptr=f"*{t}", out_ptr=f"*{io}", base_ptr=f"*{io}")
        constexprs["HAS_BASE"] = variant.branch.startswith("with θ₀")
        constexprs["FIXUP"] = variant.branch.endswith("fix-up")
        options = fastfood.fastfood_launch_options(1 << variant.log_block, variant.dtype)
    else:
        kernel = fastfood._transpose_kernel
        types = dict(grad_ptr=f"*{io}", partial_ptr=f"*{t}", slots_ptr=f"*{t}", u_ptr=f"*{t}")
        constexprs["WANT_DOT"] = variant.branch == "with λ dots"
    types.update(starts_ptr="*i64", scales_ptr=f"*{t}", origins_ptr="*i64", segments_ptr="*i32", norms_ptr="*fp32",
                 streams_ptr="*i32", fixups_ptr="*i32", block_begin="i32", row_begin="i64", row_end="i64",
                 group_offset="i64", n_blocks="i32",
                 n_programs="i32", **{name: "constexpr" for name in constexprs})
    signature = {name: types[name] for name in kernel.arg_names}  # a KeyError names a new argument
    return ASTSource(kernel, signature, constexprs=constexprs), options


def _cuobjdump() -> str:
    import triton

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")


def _inspect_cubin(cubin: bytes) -> tuple[int, list[str]]:
    """(registers per thread, SASS opcodes without NOPs) of a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as handle:
        handle.write(cubin)
        handle.flush()
        usage = subprocess.run([_cuobjdump(), "-res-usage", handle.name], capture_output=True, text=True, check=True)
        sass = subprocess.run([_cuobjdump(), "-sass", handle.name], capture_output=True, text=True, check=True)
    registers = int(re.search(r"REG:(\d+)", usage.stdout).group(1))
    opcodes = re.findall(r"^\s+/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z0-9_]+)", sass.stdout, re.M)
    return registers, [op for op in opcodes if op != "NOP"]


def compile_variant(variant: Variant, arch: int) -> Resources:
    """Compile ``variant`` for ``sm_<arch>`` and read its resources (raises if it does not compile)."""
    import triton
    from triton.backends.compiler import GPUTarget

    source, options = _source(variant)
    warps = options["num_warps"]
    compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
    registers, opcodes = _inspect_cubin(compiled.asm["cubin"])
    per_thread = max(1.0, (1 << variant.log_block) / (32 * warps))
    return Resources(
        variant=variant.label, target=f"sm_{arch}", num_warps=warps, registers=registers,
        spill_instructions=sum(op in ("LDL", "STL") for op in opcodes),
        shared_bytes=compiled.metadata.shared, shared_limit=SHARED_MEMORY_LIMIT[arch],
        instructions=len(opcodes), instructions_per_element=len(opcodes) / per_thread,
    )


def table(rows: list[Resources]) -> str:
    """A Markdown table of resources."""
    lines = ["| variant | target | warps | registers | spills | shared bytes (limit) | instructions | per entry |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.variant} | {r.target} | {r.num_warps} | {r.registers} | {r.spill_instructions} | "
                     f"{r.shared_bytes:,} ({r.shared_limit:,}) | {r.instructions:,} | "
                     f"{r.instructions_per_element:.1f} |")
    return "\n".join(lines)
