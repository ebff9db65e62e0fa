"""BitFit (Ben Zaken, Ravfogel & Goldberg 2021): train bias vectors only, every other weight frozen.

``bitfit`` trains every bias of the model outside the head: each layer's query, key, value,
attention-output, FFN-in and FFN-out biases and its LayerNorm biases, the embeddings' LayerNorm
bias, and the pooler's bias where the pooler is pretrained (on a checkpoint saved without a pooler
the pooler is part of the head, see :mod:`.base`). For a BERT of L layers, width d and FFN width
d_ff that is ``L·(7d + d_ff) + d`` (+ ``d`` for a pretrained pooler).

``bitfit-subset`` is the paper's smaller variant (its §4): only the query bias ``b_q`` and the bias
of the FFN's first matrix ``b_m2`` (d → d_ff, ``intermediate.dense``), ``L·(d + d_ff)`` numbers; it
needs a separate query projection, so it refuses models that fuse query, key and value (GPT-2,
GPT-NeoX).

Both start at the pretrained function (the biases start at their pretrained values) and have no
knob. The head follows the head policy, never BitFit's selection: on paraphrase-MiniLM-L3-v2,
whose pooler and classifier are the head, ``bitfit`` trains 13,056 biases; the notes' 13,442 is
every bias of the model, 13,056 + the pooler's 384 + the classifier's 2.

:class:`FreezingMethod` is the build shared with :mod:`.pafi`: freeze all, adapt, apply the head policy.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable

from torch import nn

from ..errors import ConfigError
from .base import Counts, Method, apply_head_policy

SUBSET_MODULES = ("attention.self.query", "intermediate.dense")  # b_q and b_m2 of the paper


def head_size(model: nn.Module, head: str, head_names: Iterable[str]) -> int:
    """The head's numbers that ``head`` trains (0 unless ``train``)."""
    names = set(head_names)
    return sum(p.numel() for n, p in model.named_parameters() if n in names) if head == "train" else 0


class FreezingMethod(Method):
    """A method that freezes the whole model, then makes its own tensors trainable (:meth:`adapt`,
    in place), then applies the head policy; it refuses a model :meth:`unsupported` names."""

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        reason = self.unsupported(model)
        if reason:
            raise ConfigError("method", reason)
        model.requires_grad_(False)
        self.adapt(model, knob, head_names, seed)
        apply_head_policy(model, head, head_names)
        return model

    @abstractmethod
    def adapt(self, model: nn.Module, knob: int | None, head_names: list[str], seed: int) -> None:
        """Add or unfreeze this method's trainable tensors in the frozen ``model`` (never the head's)."""


class BitFit(FreezingMethod):
    """Every bias outside the head (see the module doc)."""

    name = "bitfit"
    knob = None
    # The BitFit paper's grid is 1e-4 … 1e-3: 1e-4 as full fine-tuning's rate (biases are ordinary weights) …
    # … and 1e-3, its usual best: a bias moves every token's activation, so few numbers want a larger step.
    default_lrs = (1e-4, 1e-3)

    def biases(self, model: nn.Module, head_names: Iterable[str]) -> list[str]:
        """Names of the biases BitFit trains, in ``named_parameters`` order."""
        head = set(head_names)
        return [n for n, _ in model.named_parameters() if n.rsplit(".", 1)[-1] == "bias" and n not in head]

    def unsupported(self, model: nn.Module) -> str | None:
        if not self.biases(model, ()):
            return f"{self.name} trains bias vectors and {type(model).__name__} has none"
        return None

    def adapt(self, model: nn.Module, knob: int | None, head_names: list[str], seed: int) -> None:
        parameters = dict(model.named_parameters())
        for name in self.biases(model, head_names):
            parameters[name].requires_grad_(True)

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        shapes = dict(built.named_parameters())
        head_count = head_size(built, head, head_names)
        total = sum(shapes[n].numel() for n in self.biases(built, head_names)) + head_count
        return Counts(trainable=total, stored=total, head=head_count)


class BitFitSubset(BitFit):
    """The query bias and the FFN's first bias (d_ff numbers) of every layer (see the module doc)."""

    name = "bitfit-subset"
    # The same grid as BitFit's: 1e-4 as full fine-tuning's rate …
    # … and 1e-3, BitFit's usual best (the subset is a third of BitFit's numbers and no less sensitive).
    default_lrs = (1e-4, 1e-3)

    def biases(self, model: nn.Module, head_names: Iterable[str]) -> list[str]:
        head = set(head_names)
        return [f"{n}.bias" for n, m in model.named_modules()
                if n.endswith(SUBSET_MODULES) and getattr(m, "bias", None) is not None and f"{n}.bias" not in head]

    def unsupported(self, model: nn.Module) -> str | None:
        if not self.biases(model, ()):
            return (f"{self.name} trains each layer's query bias and FFN-in bias ({' and '.join(SUBSET_MODULES)}); "
                    f"{type(model).__name__} has no such separate modules (query, key and value fused?)")
        return None
