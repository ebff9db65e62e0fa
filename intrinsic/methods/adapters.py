"""Bottleneck adapters on BERT-style encoders: ``houlsby`` (Houlsby et al. 2019) and ``pfeiffer``
(Pfeiffer et al. 2021).

An adapter of width m maps a sublayer's output h, shape (batch, seq, d), to

    h + GELU(h W_down + b₁) W_up + b₂,    W_down (d, m), b₁ (m), W_up (m, d), b₂ (d),

so it has 2·m·d + m + d numbers. ``W_up`` and ``b₂`` start at zero, so a built model computes exactly
the pretrained function; ``W_down`` is drawn from ``seed`` (Kaiming-uniform, as ``nn.Linear`` draws
its weights, from a generator of its own: building leaves the global RNG alone) and ``b₁`` is zero.
GELU is the nonlinearity (that of BERT's own FFN and of Houlsby's adapter-bert code).

Placement: the adapter transforms the output of a sublayer's output projection, before dropout, the
residual and the LayerNorm (``LayerNorm(dropout(adapter(dense(x))) + residual)``):

- ``houlsby``: two per layer, on ``attention.output.dense`` and on ``output.dense`` (the FFN's), and
  the layer's two LayerNorms (``attention.output.LayerNorm``, ``output.LayerNorm``) are trained too,
  as in the paper: L · (2 · (2md + m + d) + 4d) trainable numbers;
- ``pfeiffer``: one per layer, on ``output.dense``, LayerNorms frozen: L · (2md + m + d).

The adapters live in an ``nn.ModuleList`` on :class:`AdaptedModel`, a wrapper that calls the frozen
model unchanged; each acts through a forward hook on its projection (no module of the model is
replaced or patched). Each adapter is its own hook (a bound method), so ``copy.deepcopy`` of the
wrapper copies hooks and adapters together.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Counts, Knob, Method, apply_head_policy


def bert_layers(model: nn.Module) -> list[nn.Module] | None:
    """The encoder layers of a BERT-style model (``base_model.encoder.layer``, each with
    ``attention.self.{key,value}``, ``attention.output.{dense,LayerNorm}`` and
    ``output.{dense,LayerNorm}``), or None when ``model`` has none (GPT-2, T5 …)."""
    encoder = getattr(getattr(model, "base_model", model), "encoder", None)
    layers = getattr(encoder, "layer", None)
    paths = ("attention.self.key", "attention.self.value", "attention.output.dense", "attention.output.LayerNorm",
             "output.dense", "output.LayerNorm")
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    for layer in layers:
        names = {name for name, _ in layer.named_modules()}
        if not all(path in names for path in paths):
            return None
    return list(layers)


def no_bert_layers_reason(model: nn.Module, method: str, hooks: str) -> str | None:
    """One line saying that ``method`` cannot adapt ``model`` because it is not BERT-style, or None."""
    if bert_layers(model) is not None:
        return None
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", "unknown")
    return (f"{method} needs BERT-style encoder layers ({hooks}); {type(model).__name__} "
            f"(model_type {kind!r}) has none")


def head_size(model: nn.Module, head: str, head_names: list[str]) -> int:
    """Numbers in the head's tensors when the head is trained (``head="train"``), else 0."""
    if head != "train":
        return 0
    wanted = set(head_names)
    return sum(p.numel() for name, p in model.named_parameters() if name in wanted)


def frozen_and_checked(method: Method, model: nn.Module, knob: int | None, head: str) -> int:
    """The checked knob of ``method``, after refusing an unsupported ``model`` (:class:`ConfigError`
    naming its architecture) and freezing every parameter of ``model``."""
    value = method.check(knob, head)
    reason = method.unsupported(model)
    if reason is not None:
        raise ConfigError("method", reason)
    for p in model.parameters():
        p.requires_grad_(False)
    return value


class Adapter(nn.Module):
    """h ↦ h + GELU(h W_down + b₁) W_up + b₂ on the last axis (width d, bottleneck m); zero at start.

    Also a forward hook (:meth:`hook`): it replaces its module's output by the adapted output.
    """

    def __init__(self, d: int, m: int, generator: torch.Generator):
        super().__init__()
        self.down = nn.Parameter(torch.empty(m, d))  # (m, d): F.linear computes h W_downᵀ
        self.down_bias = nn.Parameter(torch.zeros(m))
        self.up = nn.Parameter(torch.zeros(d, m))
        self.up_bias = nn.Parameter(torch.zeros(d))
        nn.init.kaiming_uniform_(self.down, a=math.sqrt(5), generator=generator)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + F.linear(F.gelu(F.linear(h, self.down, self.down_bias)), self.up, self.up_bias)

    def hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return self(output)


class AdaptedModel(nn.Module):
    """``model`` with ``adapters`` acting through forward hooks; called exactly like ``model``."""

    def __init__(self, model: nn.Module, adapters: list[Adapter]):
        super().__init__()
        self.model = model
        self.adapters = nn.ModuleList(adapters)

    @property
    def config(self):
        return self.model.config

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


class _BottleneckAdapters(Method):
    """Adapters on the projections named by ``sites`` in every layer (and the LayerNorms named by
    ``layer_norms`` trained)."""

    sites: ClassVar[tuple[str, ...]]
    layer_norms: ClassVar[tuple[str, ...]]
    knob = Knob("m", 1, None, 8, "bottleneck width of each adapter (Houlsby's smallest setting)")
    default_lrs = (
        1e-4,  # the rate of Pfeiffer et al. and AdapterHub's default: safe for wide bottlenecks
        1e-3,  # the top of Houlsby et al.'s grid: small bottlenecks and few steps need more
    )
    head_policies = ("frozen", "train")

    def unsupported(self, model: nn.Module) -> str | None:
        return no_bert_layers_reason(model, self.name, "hooks on " + ", ".join(self.sites))

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        m = frozen_and_checked(self, model, knob, head)
        generator = torch.Generator().manual_seed(seed)
        d = model.config.hidden_size
        adapters = []
        for layer in bert_layers(model):
            for site in self.sites:
                projection = layer.get_submodule(site)
                adapter = Adapter(d, m, generator).to(projection.weight)
                projection.register_forward_hook(adapter.hook)
                adapters.append(adapter)
            for name in self.layer_norms:
                layer.get_submodule(name).requires_grad_(True)
        apply_head_policy(model, head, head_names)
        return AdaptedModel(model, adapters)

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        m = self.check(knob, head)
        config = built.config
        d, layers = config.hidden_size, config.num_hidden_layers
        per_layer = len(self.sites) * (2 * m * d + m + d) + len(self.layer_norms) * 2 * d
        head_count = head_size(built.model, head, head_names)
        trainable = layers * per_layer + head_count
        return Counts(trainable=trainable, stored=trainable, head=head_count)


class Houlsby(_BottleneckAdapters):
    """Two adapters per layer (after the attention output and the FFN output), LayerNorms trained."""

    name = "houlsby"
    sites = ("attention.output.dense", "output.dense")
    layer_norms = ("attention.output.LayerNorm", "output.LayerNorm")


class Pfeiffer(_BottleneckAdapters):
    """One adapter per layer, after the FFN output; LayerNorms frozen."""

    name = "pfeiffer"
    sites = ("output.dense",)
    layer_norms = ()
