"""The interface every fine-tuning method implements, and the head policy they all share.

A method turns a pretrained classifier into a model whose trainable parameters are the method's
(everything else frozen), given one integer *knob* that sets its size (LoRA's rank, SAID's d, a
prompt's length; ``None`` for methods of fixed size such as BitFit). The training loop is the
project's one loop (:func:`intrinsic.training.train_and_evaluate`): it trains what
``requires_grad``, adds ``model.regularization()`` to the loss where the model has one, and uses
``model.optimizer_groups(lr)`` where the model has them (diff pruning trains its gates at their
own rate). A method with more than one phase overrides :meth:`Method.fit`.

Counts (:class:`Counts`) are reported three ways, because they differ:

- ``trainable``: numbers the optimizer updates;
- ``stored``: numbers needed to rebuild the fine-tuned model from θ₀ (and the seed): a random
  projection or a magnitude mask recomputable from θ₀ costs nothing, a learned mask costs its
  bits (counted as bits / 32, in float32 numbers), a prompt encoder nothing beyond its output;
- ``head``: of ``trainable``, the classification head's numbers (0 unless ``head="train"``).

The head policy (:data:`HEAD_POLICIES`) is one setting for all methods:

- ``frozen``: the head keeps its seeded random initialisation and is not trained (it is
  recomputable from the seed, so it is not stored);
- ``train``: the head's parameters are trained directly, counted in all three counts;
- ``projected``: the head is one more weight that the method reparameterises. Only DID and SAID
  do this (their θ covers the whole model, the paper's setting); other methods refuse it.

*Head* means the parameters that loading the checkpoint initialised afresh (``missing_keys``:
the classifier, and the pooler of a checkpoint saved without one), or, for a model built in
code, those under a module called ``classifier`` or ``score`` (:func:`head_parameter_names`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import ClassVar

from torch import nn

from ..errors import ConfigError

HEAD_POLICIES = ("frozen", "train", "projected")
HEAD_MODULE_NAMES = ("classifier", "score")
SEARCH_CAP = 4096  # the largest knob a search tries for a method whose model sets no limit


@dataclass(frozen=True)
class Counts:
    """``trainable``, ``stored`` and ``head`` numbers of one built model (see the module doc)."""

    trainable: int
    stored: int
    head: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Knob:
    """A method's size setting: ``name`` (``"r"``, ``"d"`` …), its integer range ``[low, high]``
    (``high`` None: no upper bound but the model's, :meth:`Method.knob_max`), the ``default``, what
    it means (``help``), and where a search starts (``start``; None: at ``low``)."""

    name: str
    low: int
    high: int | None
    default: int
    help: str
    start: int | None = None

    @property
    def first(self) -> int:
        """Where the search for the smallest knob that reaches a target starts."""
        return self.low if self.start is None else self.start

    def check(self, method: str, value: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("knob", f"of {method} ({self.name}) must be an integer, got {value!r}")
        if value < self.low or (self.high is not None and value > self.high):
            upper = "" if self.high is None else f" and at most {self.high}"
            raise ConfigError("knob", f"of {method} ({self.name}) must be at least {self.low}{upper}, got {value}")
        return value


def head_parameter_names(model: nn.Module, new_names: Iterable[str] | None = None) -> list[str]:
    """Names of the head's parameters: ``new_names`` (what loading initialised afresh) when given,
    else every parameter under a module named ``classifier`` or ``score``."""
    names = [n for n, _ in model.named_parameters()]
    if new_names is not None:
        new = set(new_names)
        return [n for n in names if n in new]
    return [n for n in names if any(part in HEAD_MODULE_NAMES for part in n.split(".")[:-1])]


def apply_head_policy(model: nn.Module, head: str, head_names: Iterable[str]) -> int:
    """Set ``requires_grad`` of the head's parameters for ``head`` (``train``: True; otherwise
    False, ``projected`` being the method's business) and return the head's trainable count."""
    params = dict(model.named_parameters())
    count = 0
    for name in head_names:
        params[name].requires_grad_(head == "train")
        count += params[name].numel() if head == "train" else 0
    return count


def trainable_count(model: nn.Module) -> int:
    """Numbers the optimizer updates (shared tensors once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


class Method(ABC):
    """One fine-tuning method. Subclasses set the class attributes and implement :meth:`build`.

    ``build`` must leave every parameter it does not train with ``requires_grad=False`` and may
    return a wrapper around ``model``; it must not depend on anything but its arguments, so that
    the same (model, knob, seed) always builds the same thing.
    """

    name: ClassVar[str]
    knob: ClassVar[Knob | None]  # None: a method of fixed size
    default_lrs: ClassVar[tuple[float, ...]]
    starts_at_pretrained: ClassVar[bool] = True  # computes exactly the pretrained function when built
    head_policies: ClassVar[tuple[str, ...]] = ("frozen", "train")
    requires: ClassVar[str | None] = None  # an optional package it needs (``"peft"``)

    def check(self, knob: int | None, head: str) -> int | None:
        """The knob, checked (the default when None); raises :class:`ConfigError` naming the fix."""
        if head not in HEAD_POLICIES:
            raise ConfigError("head", f"must be one of {', '.join(HEAD_POLICIES)}, got {head!r}")
        if head not in self.head_policies:
            raise ConfigError("head", f"{head!r} is not supported by {self.name} (it supports "
                                      f"{', '.join(self.head_policies)}); 'projected' moves the head through a "
                                      "subspace, which only did and said have")
        if self.knob is None:
            if knob is not None:
                raise ConfigError("knob", f"{self.name} has no size setting; leave it out")
            return None
        return self.knob.check(self.name, self.knob.default if knob is None else knob)

    def unsupported(self, model: nn.Module) -> str | None:
        """Why this method cannot adapt ``model`` (names the architecture), or None if it can."""
        return None

    def knob_max(self, model: nn.Module, head_names: list[str]) -> int | None:
        """The largest knob that ``model`` allows (None: no limit of the model's own; the search
        then stops at :data:`SEARCH_CAP` or ``max_d``)."""
        return None

    @abstractmethod
    def build(self, model: nn.Module, knob: int | None, *, head: str, head_names: list[str],
              seed: int) -> nn.Module:
        """The trainable model: ``model`` adapted (in place or wrapped), its head per ``head``."""

    @abstractmethod
    def counts(self, built: nn.Module, knob: int | None, *, head: str, head_names: list[str]) -> Counts:
        """The three counts of a model this method built."""

    def fit(self, built: nn.Module, train: Callable, /, **kwargs):
        """Train ``built`` with ``train`` (:func:`~intrinsic.training.train_and_evaluate` or a
        stand-in with its signature; positional, since ``train_and_evaluate`` takes a ``train``
        split among ``kwargs``) and return its ``RunResult``; one phase unless overridden."""
        return train(built, **kwargs)
