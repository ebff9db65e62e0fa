"""Tokenizers made ready for sequence classification, encoders and decoders alike.

Decoder tokenizers (GPT-2, GPT-NeoX/Pythia, Llama …) usually have no pad token and no template
for sentence pairs. :func:`prepare_for_classification` gives them what classification needs,
by the usual conventions, and changes nothing in a tokenizer that already has it:

- **pad token**: the end-of-text token. The model's ``config.pad_token_id`` must learn the same id
  (:func:`intrinsic.models.load_classifier` takes it), because the sequence-classification heads
  of decoders pool the last token that is not the pad token.
- **padding side**: right. With right padding every real token keeps its position and, under
  causal attention, never sees a pad, so an example's score does not depend on how much its batch
  was padded (left padding would shift positions for models that count them from 0).
- **sentence pairs**: a tokenizer that adds no special tokens between two texts gets them joined
  by :data:`PAIR_SEPARATOR` (then truncated from the end, as one text).

:func:`encode` is the one place texts become token ids, so every run of a measurement, and any
direct caller of :func:`intrinsic.training.train_and_evaluate`, encodes pairs the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError

PAIR_SEPARATOR = "\n"
"""What joins the two texts of a pair for a tokenizer without a pair template."""


def has_pair_template(tokenizer) -> bool:
    """Whether ``tokenizer`` marks where the second text of a pair starts (BERT's ``[SEP]``,
    RoBERTa's ``</s></s>``, Llama's second ``<s>``): it adds more special tokens to a pair than
    to one text."""
    return tokenizer.num_special_tokens_to_add(pair=True) > tokenizer.num_special_tokens_to_add(pair=False)


@dataclass(frozen=True)
class TokenizerSetup:
    """What :func:`prepare_for_classification` set: ``pad_token`` (None: the tokenizer had one),
    ``padding_side`` (None: it was already right) and ``pair_separator`` (None: the tokenizer's own
    pair template, or a task of single texts)."""

    pad_token: str | None = None
    padding_side: str | None = None
    pair_separator: str | None = None

    def changes(self) -> dict:
        """The settings that differ from the tokenizer as loaded (recorded in run configs; ``{}``
        for a tokenizer left unchanged, so encoders' stored runs keep their keys)."""
        return {k: v for k, v in (("pad_token", self.pad_token), ("padding_side", self.padding_side),
                                  ("pair_separator", self.pair_separator)) if v is not None}

    def note(self, model: str) -> str | None:
        """One line saying what was set, or None when nothing was."""
        parts = []
        if self.pad_token is not None:
            parts.append(f"pad token = end-of-text token {self.pad_token!r} (also the model's config.pad_token_id)")
        if self.padding_side is not None:
            parts.append("padding on the right")
        if self.pair_separator is not None:
            parts.append(f"sentence pairs joined by {self.pair_separator!r}")
        return f"{model}: the tokenizer had no pad token or pair template; set {', '.join(parts)}" if parts else None


def prepare_for_classification(tokenizer, pair_task: bool = False) -> TokenizerSetup:
    """Give ``tokenizer`` (modified in place) a pad token and right padding if it lacks them, and
    say how pairs are joined when ``pair_task``. Raises :class:`ConfigError` for a tokenizer with
    neither a pad token nor an end-of-text token."""
    pad_token = padding_side = separator = None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("model", "its tokenizer has neither a pad token nor an end-of-text token; "
                                       "save one in the tokenizer (tokenizer.pad_token = ...) and pass that folder")
        tokenizer.pad_token = pad_token = tokenizer.eos_token
    if tokenizer.padding_side != "right":
        tokenizer.padding_side = padding_side = "right"
    if pair_task and not has_pair_template(tokenizer):
        separator = PAIR_SEPARATOR
    return TokenizerSetup(pad_token, padding_side, separator)


def encode(tokenizer, texts: list[tuple[str, ...]], max_length: int) -> dict[str, list]:
    """Token ids (and masks) of examples of one or two texts, unpadded and truncated to
    ``max_length``; pairs are joined by :data:`PAIR_SEPARATOR` where the tokenizer has no pair
    template."""
    columns = [list(c) for c in zip(*texts, strict=True)]
    if len(columns) == 2 and not has_pair_template(tokenizer):
        columns = [[first + PAIR_SEPARATOR + second for first, second in zip(*columns, strict=True)]]
    return tokenizer(*columns, truncation=True, max_length=max_length)
