"""One training loop for full fine-tuning and subspace runs: AdamW, dynamic padding, dev metrics.

``train_and_evaluate(model, task, tokenizer, train, dev, config, validation=...)`` trains the
trainable parameters of ``model`` (all of them for full fine-tuning; θ_d and λ for a
``SubspaceWrapper``) and returns a :class:`RunResult` with the dev metrics, and the metrics on a
held-out validation split when one is given (what learning rates are chosen on). A NaN, infinite or diverging loss does
not raise: the run comes back with ``status="failed"`` and the reason, so that a sweep goes on.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from . import metrics as metric_functions
from .tasks import Split, Task
from .tokenization import encode


@dataclass
class TrainConfig:
    """Hyperparameters of one run. ``lr`` has no default: full and subspace runs differ by 10³."""

    lr: float
    epochs: float = 3.0
    batch_size: int = 32
    weight_decay: float = 0.0
    max_length: int = 128
    eval_batch_size: int = 128
    seed: int = 0
    divergence_factor: float = 10.0  # failed if the running loss exceeds this × its first value

    def __post_init__(self):
        # Floats always: the store keys runs by this dict's JSON, where epochs=10 and 10.0 differ.
        self.lr, self.epochs = float(self.lr), float(self.epochs)
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.epochs > 0 or self.batch_size < 1:
            raise ValueError("epochs must be positive and batch_size at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunResult:
    """One run: ``metrics`` on dev, ``validation_metrics`` on the held-out validation split (empty
    without one); ``first_loss`` is the first step's training loss and ``train_loss`` the
    exponential moving average (factor 0.9) at the end, so a run that never trained shows
    ``train_loss ≈ first_loss``."""

    status: str  # "ok" or "failed"
    metrics: dict[str, float] = field(default_factory=dict)
    train_loss: float | None = None
    steps: int = 0
    seconds: float = 0.0
    error: str | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)
    first_loss: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite, or grew past the divergence bound."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def tokenize(tokenizer, split: Split, max_length: int) -> list[dict]:
    """Token ids per example, unpadded (batches are padded to their longest member).

    Computed once per (split, tokenizer, ``max_length``) and kept in ``split.cache``; every
    caller gets the same list, which nobody modifies (``collate`` copies what it pads).
    """
    key = ("tokenize", id(tokenizer), max_length)
    kept = split.cache.get(key)
    if kept is None or kept[0] is not tokenizer:  # the tokenizer itself guards against a reused id
        encoded = encode(tokenizer, split.texts, max_length)
        keys = list(encoded.keys())
        kept = split.cache[key] = (tokenizer, [{k: encoded[k][i] for k in keys} for i in range(len(split))])
    return kept[1]


def collate(tokenizer, features: list[dict], labels: list, regression: bool) -> dict:
    batch = tokenizer.pad(features, return_tensors="pt")
    batch["labels"] = torch.tensor(labels, dtype=torch.float32 if regression else torch.long)
    return dict(batch)


def _optimizer_groups(model, lr: float) -> list:
    """``model.optimizer_groups(lr)`` where a method defines its own (parameters at other rates),
    else every parameter that requires grad, at ``lr``."""
    groups = getattr(model, "optimizer_groups", None)
    if groups is not None:
        return groups(lr)
    return [p for p in model.parameters() if p.requires_grad]


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def evaluate(model, task: Task, tokenizer, features: list[dict], labels: list, config: TrainConfig,
             device: torch.device) -> dict[str, float]:
    """Dev metrics of ``model`` (argmax for classification, the single output for regression)."""
    model.eval()
    predictions = []
    for start in range(0, len(features), config.eval_batch_size):
        stop = start + config.eval_batch_size
        batch = collate(tokenizer, features[start:stop], labels[start:stop], task.is_regression)
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        with _autocast(device):
            logits = model(**batch).logits.float()
        predictions.extend((logits[:, 0] if task.is_regression else logits.argmax(-1)).tolist())
    return metric_functions.compute(task.metrics, predictions, labels)


def train_and_evaluate(model, task: Task, tokenizer, train: Split, dev: Split, config: TrainConfig,
                       device: str | torch.device = "auto", progress: bool = True,
                       description: str = "training", validation: Split | None = None) -> RunResult:
    """Train ``model``'s trainable parameters on ``train`` and return dev metrics, and the
    ``validation`` split's metrics when given (see module doc)."""
    device = pick_device(device) if isinstance(device, str) else device
    model.to(device)
    torch.manual_seed(config.seed)
    optimizer = torch.optim.AdamW(_optimizer_groups(model, config.lr), lr=config.lr, weight_decay=config.weight_decay)
    regularization = getattr(model, "regularization", None)
    train_features = tokenize(tokenizer, train, config.max_length)
    dev_features = tokenize(tokenizer, dev, config.max_length)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = max(1, round(config.epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(config.seed)

    start_time = time.perf_counter()
    first_loss, running, step = None, None, 0
    try:
        with tqdm(total=total_steps, desc=description, unit="step", disable=not progress, leave=False) as bar:
            while step < total_steps:
                order = torch.randperm(len(train), generator=generator).tolist()
                for begin in range(0, len(order), config.batch_size):
                    if step >= total_steps:
                        break
                    index = order[begin:begin + config.batch_size]
                    batch = collate(tokenizer, [train_features[i] for i in index],
                                    [train.labels[i] for i in index], task.is_regression)
                    batch = {k: v.to(device) for k, v in batch.items()}
                    model.train()
                    with _autocast(device):
                        loss = model(**batch).loss
                        if regularization is not None:  # a method's penalty (diff pruning's L0)
                            loss = loss + regularization()
                    value = loss.item()
                    if not math.isfinite(value):
                        raise Diverged(f"loss became {value} at step {step}; lower the learning rate")
                    first_loss = value if first_loss is None else first_loss
                    running = value if running is None else 0.9 * running + 0.1 * value
                    if step >= 10 and running > config.divergence_factor * max(first_loss, 1e-3):
                        raise Diverged(f"loss diverged: {running:.3g} > {config.divergence_factor:g} × first "
                                       f"loss {first_loss:.3g} at step {step}; lower the learning rate")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{running:.3f}")
        dev_metrics = evaluate(model, task, tokenizer, dev_features, dev.labels, config, device)
        validation_metrics = {} if validation is None else evaluate(
            model, task, tokenizer, tokenize(tokenizer, validation, config.max_length), validation.labels, config,
            device)
    except Diverged as error:
        return RunResult("failed", train_loss=running, steps=step, seconds=time.perf_counter() - start_time,
                         error=str(error), first_loss=first_loss)
    return RunResult("ok", dev_metrics, running, step, time.perf_counter() - start_time,
                     validation_metrics=validation_metrics, first_loss=first_loss)
