"""DID and SAID as methods: θ = θ₀ + P θ_d (SAID: each tensor's update scaled by its own λ_i).

The knob is d, the trainable count (SAID's m scales come out of it). The projection P is
regenerated from the seed, so ``stored`` = ``trainable`` = d (plus the head under
``head="train"``). With ``head="projected"`` the head is part of θ (the paper's setting and
:class:`~intrinsic.wrapper.SubspaceWrapper`'s default); with ``frozen`` or ``train`` it is left
out of θ, so D is the model's count without the head.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from ..config import SubspaceConfig
from ..errors import ConfigError
from .base import HEAD_POLICIES, Counts, Knob, Method, apply_head_policy


class DID(Method):
    """Direct intrinsic dimension (Li et al. 2018): θ_d ∈ R^d, a Fastfood projection by default."""

    name = "did"
    knob = Knob("d", 1, None, 1024, "dimension of the random subspace: the trainable count", start=128)
    # The study's grid on MiniLM (docs/protocol.md): the update of each weight grows as lr·√(d/D).
    default_lrs: ClassVar[tuple[float, ...]] = (1e-2, 3e-2, 1e-1)
    head_policies: ClassVar[tuple[str, ...]] = HEAD_POLICIES
    said: ClassVar[bool] = False

    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str], seed: int,
              subspace: SubspaceConfig | None = None, projections=None) -> nn.Module:
        """``SubspaceWrapper`` of ``model``; ``subspace`` gives the projection's settings (default:
        Fastfood, global normalisation), ``projections`` a cache shared by a measurement's runs."""
        from ..wrapper import SubspaceWrapper

        d = self.check(knob, head)
        exclude = () if head == "projected" else head_names
        m = sum(1 for n, p in model.named_parameters() if p.numel() > 0 and n not in set(exclude))
        if self.said and d <= m:
            raise ConfigError("knob", f"of said (d) must exceed the model's {m} parameter tensors, whose scales "
                                      f"it includes; got {d}")
        config = subspace or SubspaceConfig(d=d, said=self.said, seed=seed)
        if (config.d, config.said, config.seed) != (d, self.said, seed):
            raise ValueError(f"subspace {config} disagrees with {self.name} at d={d}, seed={seed}")
        wrapper = SubspaceWrapper(model, config=config, projections=projections, exclude=exclude)
        if head != "projected":
            apply_head_policy(model, head, head_names)
        return wrapper

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        """D: the model's parameter count, without the head unless it is projected (an upper bound
        either way)."""
        return sum(p.numel() for p in model.parameters())

    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        params = dict(built.model.named_parameters())
        head_count = sum(params[n].numel() for n in head_names) if head == "train" else 0
        return Counts(trainable=knob + head_count, stored=knob + head_count, head=head_count)


class SAID(DID):
    """Structure-aware intrinsic dimension (Aghajanyan et al. 2021): d − m projected numbers and one
    scale λ_i per tensor (m tensors), so d must exceed m."""

    name = "said"
    knob = Knob("d", 2, None, 1024, "dimension of the random subspace including the m per-tensor scales",
                start=128)
    said = True
