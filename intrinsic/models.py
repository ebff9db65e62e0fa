"""Naming and loading the models a measurement compares: local folders and hub IDs with ``@revision``.

A model spec is what a user types after ``--model``:

- a local folder with ``config.json`` (``runs/mlm/m/step-1000``), used as is, even if its name
  contains ``@``;
- a hub ID (``roberta-base``), or a hub ID at a revision: ``EleutherAI/pythia-70m@step3000``
  (branch, tag or commit), loaded with ``from_pretrained(name, revision=...)``.

:func:`model_info` describes a loaded model for the figures: its parameter counts and, where it
can tell, its pre-training step.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import ConfigError

_STEP_PATTERN = re.compile(r"(?:^|[-_/])(?:step|checkpoint|ckpt)[-_]?(\d+)$")
_GENERIC_NAMES = {"model", "final", "latest", "best", "hf", "huggingface"}


@dataclass(frozen=True)
class ModelSpec:
    """``name`` (folder or hub ID) and ``revision`` (None: the default branch or a local folder)."""

    name: str
    revision: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        if not spec or not spec.strip():
            raise ConfigError("model", "is empty: give a hub ID (roberta-base) or a local folder")
        if Path(spec).expanduser().exists() or "@" not in spec:
            return cls(spec)
        name, _, revision = spec.rpartition("@")
        if not name or not revision:
            raise ConfigError("model", f"{spec!r}: write a revision as NAME@REVISION, "
                                       "e.g. EleutherAI/pythia-70m@step3000")
        return cls(name, revision)

    @property
    def is_local(self) -> bool:
        return Path(self.name).expanduser().is_dir()

    def store_name(self) -> str:
        """How run stores name the model: a local folder as its absolute path, so that
        ``runs/mlm/xs/step-0`` and ``./runs/mlm/xs/step-0`` (or the same folder from another working
        directory) find the same stored runs; a hub ID (with its ``@revision``) as written."""
        if self.is_local:
            return str(Path(self.name).expanduser().resolve())
        return self.name if self.revision is None else f"{self.name}@{self.revision}"

    def kwargs(self) -> dict:
        """Keyword arguments for ``from_pretrained``."""
        return {} if self.revision is None else {"revision": self.revision}

    def label(self) -> str:
        """A short name for tables and legends: ``m/step-1000``, ``roberta-base``, ``pythia-70m@step3000``.

        A local folder with a generic name (``model``, ``final``) is named after its parent."""
        if self.is_local:
            path = Path(self.name).expanduser().resolve()
            if path.name.lower() in _GENERIC_NAMES:  # pkg/model → pkg
                short = path.parent.name
            elif _STEP_PATTERN.search("/" + path.name):  # run/step-100 → run/step-100
                short = f"{path.parent.name}/{path.name}"
            else:
                short = path.name
        else:
            short = self.name.rsplit("/", 1)[-1]
        return short if self.revision is None else f"{short}@{self.revision}"


def load_tokenizer(spec: str):
    from transformers import AutoTokenizer

    model = ModelSpec.parse(spec)
    return AutoTokenizer.from_pretrained(model.name, **model.kwargs())


def load_classifier(spec: str, num_labels: int, pad_token_id: int | None = None):
    """``AutoModelForSequenceClassification`` with a freshly initialised head of ``num_labels`` outputs.

    ``pad_token_id`` (the tokenizer's) replaces the config's: decoders' classification heads pool the
    last token that is not ``config.pad_token_id``, so the two must agree (without an id they refuse
    batches; with another one they pool a pad). Encoders read the id only when they are built.
    """
    return load_classifier_and_new_names(spec, num_labels, pad_token_id)[0]


def load_classifier_and_new_names(spec: str, num_labels: int, pad_token_id: int | None = None):
    """(:func:`load_classifier`'s model, the sorted names of the parameters the checkpoint did not
    hold and loading initialised afresh: the classifier, and a pooler a checkpoint was saved without)."""
    from transformers import AutoModelForSequenceClassification

    model = ModelSpec.parse(spec)
    classifier, info = AutoModelForSequenceClassification.from_pretrained(
        model.name, num_labels=num_labels, output_loading_info=True, **model.kwargs())
    if pad_token_id is not None:
        classifier.config.pad_token_id = pad_token_id
    names = {n for n, _ in classifier.named_parameters()}
    return classifier, sorted(names & set(info["missing_keys"]))


def pretraining_step(spec: str) -> int | None:
    """The pre-training step of a checkpoint, or None when nothing says it.

    Looked up, in order: ``pretraining.json`` (written by ``scripts/pretrain_mlm.py``) and
    ``trainer_state.json`` (the HF ``Trainer``'s ``global_step``) in a local folder; then a
    ``step-N`` / ``checkpoint-N`` / ``stepN`` folder name or revision.
    """
    model = ModelSpec.parse(spec)
    if model.is_local:
        folder = Path(model.name).expanduser()
        for filename, key in (("pretraining.json", "step"), ("trainer_state.json", "global_step")):
            path = folder / filename
            if path.is_file():
                value = json.loads(path.read_text()).get(key)
                if isinstance(value, int):
                    return value
        candidate = "/" + folder.resolve().name
    else:
        candidate = "/" + (model.revision or "")
    match = _STEP_PATTERN.search(candidate)
    return int(match.group(1)) if match else None


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


def weights_fingerprint(spec: str) -> str | None:
    """SHA-256 (16 hex digits) of a local model folder's ``config.json`` and weight files; None for a hub ID.

    The run store is keyed by the model's path, so a folder whose weights were rewritten (a
    checkpoint trained again under the same name) would otherwise get the old folder's stored runs.
    A hub ID is identified by its name and revision instead.
    """
    model = ModelSpec.parse(spec)
    if not model.is_local:
        return None
    folder = Path(model.name).expanduser()
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and (p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def parameter_counts(model: torch.nn.Module) -> dict:
    """``params`` (all) and ``non_embedding_params`` (all but ``nn.Embedding`` tables, as in Kaplan et al.)."""
    total = sum(p.numel() for p in model.parameters())
    embeddings = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    embedding = sum(p.numel() for m in embeddings for p in m.parameters(recurse=False))
    return {"params": total, "non_embedding_params": total - embedding}


def model_info(spec: str, model: torch.nn.Module) -> dict:
    """What the figures need about one model: label, revision, parameter counts, pre-training step."""
    parsed = ModelSpec.parse(spec)
    return {"label": parsed.label(), "revision": parsed.revision, **parameter_counts(model),
            "step": pretraining_step(spec)}
