"""The head alone (a linear probe of the frozen model): the baseline every method is read against.

Only the head's parameters train (the classifier, and a pooler that loading initialised afresh);
the model stays at θ₀. Its score is printed beside every frontier's targets, because a head that
reaches a target by itself makes every method reach it at its smallest setting under
``head="train"``. Fixed size; the head policy is ``train`` by definition.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from .base import Counts, Method, apply_head_policy


class HeadOnly(Method):
    """Train the head, nothing else: trainable = stored = head = the head's count."""

    name = "head-only"
    knob = None
    default_lrs: ClassVar[tuple[float, ...]] = (
        1e-3,  # a freshly initialised linear layer on fixed features: the usual probe rate …
        1e-2,  # … and ten times that, for one short epoch
    )
    head_policies: ClassVar[tuple[str, ...]] = ("train",)

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        self.check(knob, head)
        model.requires_grad_(False)
        apply_head_policy(model, "train", head_names)
        return model

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        params = dict(built.named_parameters())
        size = sum(params[n].numel() for n in head_names)
        return Counts(trainable=size, stored=size, head=size)
