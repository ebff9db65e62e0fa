"""``SubspaceWrapper``: train any ``nn.Module`` in a random d-dimensional subspace.

Every parameter tensor θ_i of the wrapped model is frozen and, on each call, replaced by

    DID:  θ_i = θ₀,i + (P θ_d)_i
    SAID: θ_i = θ₀,i + λ_i · (P θ_d)_i

through ``torch.func.functional_call``: the model's own tensors are θ₀ (no copy is kept). With
autograd on, the effective tensors exist only for the duration of a forward/backward pass;
without it (evaluation), they are projected once and reused by every batch until θ_d, λ or θ₀
changes. θ_d starts at 0 and λ at 1, so the wrapped model computes exactly what the original
computes until trained.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from .config import SubspaceConfig
from .projections import Projection, make_projection

CONFIG_FILE = "subspace_config.json"
WEIGHTS_FILE = "subspace_weights.safetensors"
FORMAT_VERSION = 1


class ProjectionCache:
    """The projections of one measurement, kept so that its runs draw each one once.

    A projection is a function of its configuration alone (kind, d, segment sizes, seed and
    options), so wrappers of the same configuration can share one: the runs of one d and seed
    at several learning rates then draw its random state once, and compute exactly what fresh
    projections compute. Holds the ``capacity`` most recently used; each keeps its random state
    (``Projection.state_nbytes()``: up to 6 bytes per model parameter), so give the number of
    projections that alternate (one per seed) and drop the cache with the measurement.
    """

    def __init__(self, capacity: int = 1):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._kept: OrderedDict[tuple, Projection] = OrderedDict()

    def get(self, key: tuple, build: Callable[[], Projection]) -> Projection:
        """The projection kept under ``key``, else ``build()``, kept."""
        if key in self._kept:
            self._kept.move_to_end(key)
        else:
            self._kept[key] = build()
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return self._kept[key]

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()


class SubspaceWrapper(nn.Module):
    """Wrap ``model`` so that only d numbers are trainable.

    Args:
        model: any ``nn.Module`` (Hugging Face models included). All of its parameters are
            frozen, the classification head too. Tied parameters are counted once.
        d: total trainable count; exactly the number of ``requires_grad`` parameters of the
            wrapper in both DID and SAID mode.
        projection, said, seed, **options: see :class:`SubspaceConfig`.
        config: a ready ``SubspaceConfig`` instead of the arguments above.
        projections: a :class:`ProjectionCache` shared by the wrappers of one measurement, so
            that wrappers with the same subspace reuse one projection and its random state.
        exclude: names of parameters left out of θ (a classification head that is frozen or
            trained directly): they are not projected, and keep their own ``requires_grad``
            set to False here; D counts only the projected parameters.

    Calling the wrapper calls ``model`` with θ = θ₀ + P θ_d (same arguments, same outputs).
    Train with ``torch.optim.AdamW(wrapper.trainable_parameters(), lr=...)``.
    """

    def __init__(
        self,
        model: nn.Module,
        d: int | None = None,
        projection: str = "fastfood",
        said: bool = False,
        seed: int = 0,
        *,
        config: SubspaceConfig | None = None,
        projections: ProjectionCache | None = None,
        exclude: Iterable[str] = (),
        **options,
    ):
        super().__init__()
        if config is None:
            if d is None:
                raise ValueError("SubspaceWrapper needs d (the number of trainable parameters)")
            config = SubspaceConfig(d=d, projection=projection, said=said, seed=seed, **options)
        elif d is not None or options:
            raise ValueError("pass either config= or d/projection/said/seed/options, not both")
        self.subspace_config = config
        self.model = model

        excluded = set(exclude)
        unknown = excluded - {n for n, _ in model.named_parameters()}
        if unknown:
            raise ValueError(f"exclude names parameters the model does not have: {sorted(unknown)}")
        self.excluded = tuple(sorted(excluded))
        named = [(n, p) for n, p in model.named_parameters() if p.numel() > 0 and n not in excluded]
        if not named:
            raise ValueError("the model has no parameters to reparameterise")
        self.parameter_names = tuple(n for n, _ in named)
        self.parameter_shapes = tuple(tuple(p.shape) for _, p in named)
        self._requires_grad_before = {n: p.requires_grad for n, p in model.named_parameters()}
        model.requires_grad_(False)

        m = len(named)
        if config.said and config.d <= m:
            raise ValueError(
                f"SAID needs d > the number of parameter tensors (m={m}): λ takes m of the d "
                f"trainable numbers; got d={config.d}. Use d ≥ {m + 1} or said=False."
            )
        d_theta = config.d - m if config.said else config.d
        sizes = [p.numel() for _, p in named]
        device = named[0][1].device
        # θ_d is float32 (float64 for a float64 model) whatever the model's dtype, bf16 included.
        dtype = torch.float64 if named[0][1].dtype == torch.float64 else torch.float32
        kind, seed, settings = config.projection, config.seed, config.projection_options()

        def build() -> Projection:
            return make_projection(kind, d_theta, sizes, seed=seed, **settings)

        key = (kind, d_theta, tuple(sizes), seed, tuple(sorted(settings.items())))
        self.projection: Projection = (build() if projections is None else projections.get(key, build)).to(device)
        self.theta_d = nn.Parameter(torch.zeros(d_theta, device=device, dtype=dtype))
        self.said_scales = nn.Parameter(torch.ones(m, device=device, dtype=dtype)) if config.said else None
        self._merged = False
        self._kept: tuple | None = None  # (inputs, their versions, θ): see _parameters_without_grad

    # ------------------------------------------------------------------ sizes
    @property
    def D(self) -> int:
        """Number of parameters of the wrapped model (tied tensors counted once)."""
        return self.projection.D

    def trainable_parameters(self) -> list[nn.Parameter]:
        """θ_d, and λ in SAID mode: the only tensors an optimiser should see."""
        return [p for p in (self.theta_d, self.said_scales) if p is not None]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def print_trainable_parameters(self) -> None:
        """One line, as in Hugging Face ``peft``: trainable count, total count, percentage."""
        trainable = self.num_trainable()
        print(f"trainable params: {trainable:,} || all params: {self.D:,} || "
              f"trainable%: {100 * trainable / self.D:.4f}")

    @property
    def config(self):
        """The wrapped model's own ``config`` (Hugging Face models), so code that reads
        ``model.config`` keeps working; the subspace's settings are ``subspace_config``."""
        return getattr(self.model, "config", None)

    # ---------------------------------------------------------------- forward
    def effective_parameters(self) -> dict[str, torch.Tensor]:
        """{name: θ₀ + P θ_d (scaled by λ in SAID)}, differentiable in θ_d and λ."""
        model_params = dict(self.model.named_parameters())
        bases = [model_params[name] for name in self.parameter_names]
        tensors = self.projection.add_to(self.theta_d, bases, self.said_scales)
        return dict(zip(self.parameter_names, tensors, strict=True))

    def forward(self, *args, **kwargs):
        if self._merged:
            raise RuntimeError("this wrapper was merged into its model; call the model directly")
        if torch.is_grad_enabled():
            self._kept = None
            parameters = self.effective_parameters()
        else:
            parameters = self._parameters_without_grad()
        return functional_call(self.model, parameters, args, kwargs)

    def _parameters_without_grad(self) -> dict[str, torch.Tensor]:
        """θ for a forward without autograd, projected once and kept while its inputs are unchanged.

        The inputs are θ_d, λ and θ₀: the same tensor objects at the same in-place version
        (``optimizer.step()`` and any in-place write bump it), so evaluating many batches
        projects once and gives exactly what projecting per batch gives. The kept θ (one copy of
        the model's parameters) is dropped by ``train()``/``eval()`` and by a forward with grad.
        """
        inputs = [t for t in (self.theta_d, self.said_scales, *self.model.parameters()) if t is not None]
        versions = [t._version for t in inputs]
        kept = self._kept
        if kept is None or len(kept[0]) != len(inputs) or kept[1] != versions or \
                any(a is not b for a, b in zip(kept[0], inputs, strict=True)):
            kept = self._kept = (inputs, versions, self.effective_parameters())
        return kept[2]

    def train(self, mode: bool = True) -> SubspaceWrapper:
        self._kept = None
        return super().train(mode)

    # ------------------------------------------------------------- save/load
    def parameter_fingerprint(self) -> str:
        """Hash of the wrapped model's parameter names and shapes, checked on load."""
        text = json.dumps([self.parameter_names, self.parameter_shapes])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write θ_d, λ and the config (kilobytes); the model's own weights are not written."""
        from safetensors.torch import save_file

        from . import __version__

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"theta_d": self.theta_d.detach().float().cpu().contiguous()}
        if self.said_scales is not None:
            tensors["said_scales"] = self.said_scales.detach().float().cpu().contiguous()
        save_file(tensors, str(directory / WEIGHTS_FILE))
        record = {
            "format_version": FORMAT_VERSION,
            "intrinsic_version": __version__,
            "config": self.subspace_config.to_dict(),
            "projection": self.projection.config(),
            "num_tensors": len(self.parameter_names),
            "excluded": list(self.excluded),
            "parameter_fingerprint": self.parameter_fingerprint(),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
        return directory

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory: str | Path) -> SubspaceWrapper:
        """Wrap ``model`` (the same pretrained θ₀) with a subspace saved by ``save_pretrained``."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {directory}; save with save_pretrained() first")
        record = json.loads(config_path.read_text())
        wrapper = cls(model, config=SubspaceConfig.from_dict(record["config"]), exclude=record.get("excluded", ()))
        if wrapper.parameter_fingerprint() != record["parameter_fingerprint"]:
            raise ValueError(
                f"{directory} was saved for a model with other parameter names or shapes; "
                "wrap the same architecture it was trained on"
            )
        tensors = load_file(str(directory / WEIGHTS_FILE))
        with torch.no_grad():
            wrapper.theta_d.copy_(tensors["theta_d"])
            if wrapper.said_scales is not None:
                wrapper.said_scales.copy_(tensors["said_scales"])
        return wrapper

    # ------------------------------------------------------------------ merge
    @torch.no_grad()
    def merge_and_unload(self) -> nn.Module:
        """Write θ₀ + P θ_d into the model's own tensors and return the plain model.

        The returned model runs at the original cost (no projection at inference) and its
        parameters get back the ``requires_grad`` flags they had before wrapping. The wrapper
        is unusable afterwards.
        """
        model_params = dict(self.model.named_parameters())
        for name, value in self.effective_parameters().items():
            model_params[name].copy_(value)
        for name, param in self.model.named_parameters():
            param.requires_grad_(self._requires_grad_before.get(name, True))
        self._merged = True
        return self.model

    def extra_repr(self) -> str:
        return f"D={self.D}, trainable={self.num_trainable()}, said={self.subspace_config.said}"
