"""The runner: one training run of a measurement, read from the run store, trained, or stored.

A :class:`Runner` holds what every run of one (model, task) measurement shares: the task's train
and dev splits, the tokenizer, the fingerprint of a local model folder, and the model's sizes.
For a :class:`RunRequest` (full fine-tuning, or the method at a knob), ``runner.stored(request)``
looks it up, ``runner.execute(request)`` trains it and returns its result dict
(``RunResult.to_dict()``: ``status``, ``metrics``, …), and ``runner.keep(request, result)``
stores it; the driver of :mod:`intrinsic.executors` combines them.

The run's store key is a hash of everything that defines it (see :meth:`Runner.run_config`): the
model's absolute path or hub name, the task, the data folder's absolute path, the training
hyperparameters, the subspace configuration and, for Fastfood, the random-number scheme. A
stored run whose local model folder has changed since (another fingerprint) is trained again.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .config import SubspaceConfig
from .errors import ModelLoadError
from .methods import SEARCH_CAP, Counts, get_method, head_parameter_names
from .models import ModelSpec, load_classifier_and_new_names, load_tokenizer, model_info, weights_fingerprint
from .notices import note_once
from .projections.fastfood import RANDOM_SCHEME as FASTFOOD_RANDOM_SCHEME
from .store import ResultStore
from .tasks import Task, get_task, hold_out, load_task
from .tokenization import prepare_for_classification
from .training import RunResult, TrainConfig, train_and_evaluate
from .wrapper import ProjectionCache

if TYPE_CHECKING:
    from .measure import MeasureConfig

# ``train_fn(model, task, tokenizer, train, dev, config, *, device, progress, description, validation)
# -> RunResult``: the signature of :func:`intrinsic.training.train_and_evaluate`, the default.
TrainFn = Callable[..., RunResult]


VALIDATION_SEED = 0  # the held-out validation split is the same for every run and measurement


@dataclass(frozen=True)
class RunRequest:
    """One training run a measurement needs: full fine-tuning (``full``), else the method at
    ``knob`` (None for a method of fixed size), at learning rate ``lr`` and ``seed``."""

    full: bool
    knob: int | None
    lr: float
    seed: int


def load_splits(task: Task, config: MeasureConfig) -> tuple:
    """(train, dev, validation) of a measurement. With ``selection="validation"``, validation is
    ``min(validation_size, n // 5)`` examples held out of the n of the training file
    (:func:`~intrinsic.tasks.hold_out`, seed :data:`VALIDATION_SEED`) and train the first
    ``max_train_samples`` of the rest; with ``"dev"``, validation is None and train the first
    ``max_train_samples`` of the file."""
    full_train, dev = load_task(task, config.data_dir)
    if config.selection == "dev":
        return full_train.head(config.max_train_samples), dev, None
    rest, validation = hold_out(full_train, min(config.validation_size, len(full_train) // 5), VALIDATION_SEED)
    return rest.head(config.max_train_samples), dev, validation


class Runner:
    """Runs (or fetches from ``store``) the single training runs of one measurement.

    ``train_fn`` trains and evaluates one model (default :func:`~intrinsic.training.train_and_evaluate`).
    Runs of another ``train_fn`` are stored under keys that name it, so they never stand in for
    real training runs in a shared store.

    A run is asked for as a :class:`RunRequest`: :meth:`stored` looks it up, :meth:`execute`
    trains it without touching the store (what a worker of :mod:`intrinsic.executors` does), and
    :meth:`keep` stores it. ``store`` is None in a worker, which never writes one.
    """

    def __init__(self, config: MeasureConfig, store: ResultStore | None, *, progress: bool = True,
                 train_fn: TrainFn | None = None):
        self.config, self.store, self.progress = config, store, progress
        self.train_fn = train_fn or train_and_evaluate
        self.task: Task = get_task(config.task)
        self.train, self.dev, self.validation = load_splits(self.task, config)
        self.tokenizer = self._loading(load_tokenizer, config.model)
        pair_task = len(self.task.text_columns) == 2
        self.tokenizer_setup = prepare_for_classification(self.tokenizer, pair_task=pair_task)
        note = self.tokenizer_setup.note(ModelSpec.parse(config.model).label())
        if note is not None:
            note_once(note)
        self.fingerprint = weights_fingerprint(config.model)
        # Stored runs are keyed by absolute paths: the same folder spelt two ways is one model.
        self.model_name = ModelSpec.parse(config.model).store_name()
        self.data_dir = None if config.data_dir is None else str(Path(config.data_dir).expanduser().resolve())
        self.warned_stale = False  # one warning per model when its folder changed since stored runs
        self._sizes: dict | None = None  # D, num_tensors, info: read from the first model loaded
        self.projections = ProjectionCache(len(config.seeds))  # a (d, seed)'s runs at every lr share one
        self.method = get_method(config.method_name)
        self.head = config.head_policy
        self._counts: dict = {}

    # ------------------------------------------------------------------ the model and its sizes
    def load_model(self, seed: int) -> torch.nn.Module:
        """The classifier with its head initialised from ``seed``; records the model's sizes and
        which of its parameters loading initialised afresh (the head)."""
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # our own bars show the runs
        torch.manual_seed(seed)  # the classification head is freshly initialised
        model, new_names = self._loading(load_classifier_and_new_names, self.config.model, self.task.num_labels,
                                         self.tokenizer.pad_token_id)
        if self._sizes is None:
            self._sizes = {"D": sum(p.numel() for p in model.parameters()),
                           "num_tensors": sum(1 for p in model.parameters() if p.numel() > 0),
                           "info": model_info(self.config.model, model),
                           "head_names": head_parameter_names(model, new_names or None)}
            params = dict(model.named_parameters())
            self._sizes["head_size"] = sum(params[n].numel() for n in self._sizes["head_names"])
            conventional = set(head_parameter_names(model))  # classifier / score modules
            beyond = [n for n in new_names if n not in conventional]
            if beyond:
                note_once(f"{self.info['label']}: {', '.join(beyond)} are not in the checkpoint and start random; "
                          "they count as head (head policy: " + self.head + ")")
        return model

    @staticmethod
    def _loading(load, spec: str, *args):
        """``load(spec, *args)``, its failure to find the model raised as :class:`ModelLoadError`."""
        try:
            return load(spec, *args)
        except (FileNotFoundError, PermissionError):
            raise  # a file the loader named: its own message says which
        except OSError as error:
            raise ModelLoadError(spec, str(error)) from error

    def _size(self, name: str):
        if self._sizes is None:  # every run so far came from the store
            self.load_model(self.config.seeds[0])
        return self._sizes[name]

    @property
    def D(self) -> int:
        """Parameters of the classifier (its full dimension)."""
        return self._size("D")

    @property
    def num_tensors(self) -> int:
        """Non-empty parameter tensors m (SAID's scales take m of d)."""
        return self._size("num_tensors")

    @property
    def info(self) -> dict:
        """``intrinsic.models.model_info`` of the classifier: label, revision, counts, pre-training step."""
        return self._size("info")

    @property
    def head_names(self) -> list[str]:
        """The head's parameters: those loading initialised afresh (``methods.head_parameter_names``)."""
        return self._size("head_names")

    @property
    def head_size(self) -> int:
        """Numbers in the head's parameters (:attr:`head_names`)."""
        return self._size("head_size")

    # ------------------------------------------------------------------ the method and its knob
    @property
    def is_subspace(self) -> bool:
        return self.method.name in ("did", "said")

    def knob_limits(self) -> tuple[int, int]:
        """(smallest, largest) knob the search may try: the method's range, the model's limit
        (:meth:`~intrinsic.methods.Method.knob_max`, else ``SEARCH_CAP``), and ``max_d``."""
        knob = self.method.knob
        if self.is_subspace:
            # θ covers the head only when it is projected
            projected = self.head == "projected"
            low = self.num_tensors - (0 if projected else len(self.head_names)) + 1 if self.method.name == "said" else 1
            high = self.D - (0 if projected else self.head_size)
        else:
            low = knob.low
            high = self.method.knob_max(self.load_model(self.config.seeds[0]), self.head_names) or SEARCH_CAP
        if knob.high is not None:
            high = min(high, knob.high)
        return low, min(high, self.config.max_d or high)

    def counts(self, knob: int | None) -> dict:
        """``trainable``, ``stored`` and ``head`` counts of the method at ``knob`` (built once)."""
        if knob not in self._counts:
            if self.is_subspace:
                head = self.head_size if self.head == "train" else 0
                counts = Counts(knob + head, knob + head, head)
            else:
                seed = self.config.seeds[0]
                built = self.method.build(self.load_model(seed), knob, head=self.head, head_names=self.head_names,
                                          seed=seed)
                counts = self.method.counts(built, knob, head=self.head, head_names=self.head_names)
            self._counts[knob] = counts.to_dict()
        return self._counts[knob]

    # ------------------------------------------------------------------ runs
    def train_config(self, lr: float, seed: int) -> TrainConfig:
        c = self.config
        return TrainConfig(lr=lr, epochs=c.epochs, batch_size=c.batch_size, max_length=c.max_length, seed=seed)

    def subspace_config(self, d: int | None, seed: int) -> SubspaceConfig | None:
        c = self.config
        return None if d is None or not self.is_subspace else SubspaceConfig(
            d=d, projection=c.projection, said=self.method.name == "said", seed=seed,
            normalization=c.normalization, layout=c.layout if c.projection == "fastfood" else "stacked",
        )

    def run_config(self, d: int | None, lr: float, seed: int, *, full: bool | None = None) -> dict:
        """Everything that defines one run: the store's key is a hash of this dict.

        Full fine-tuning (``full``, by default when ``d`` is None) and DID/SAID with the head
        projected have the keys they always had; DID/SAID with another head policy add ``head``;
        other methods add ``method`` (name, knob, head) instead of ``subspace``."""
        full = d is None if full is None else full
        subspace = None if full else self.subspace_config(d, seed)
        run_config = {
            "model": self.model_name, "task": self.task.name, "data_dir": self.data_dir,
            "max_train_samples": self.config.max_train_samples, "train": self.train_config(lr, seed).to_dict(),
            "subspace": None if subspace is None else subspace.to_dict(),
        }
        if subspace is not None and subspace.projection == "fastfood":
            run_config["fastfood_random"] = FASTFOOD_RANDOM_SCHEME  # which P a seed means
        if not full and self.is_subspace and self.head != "projected":
            run_config["head"] = self.head
        if not full and not self.is_subspace:
            run_config["method"] = {"name": self.method.name, "knob": d, "head": self.head}
        if self.tokenizer_setup.changes():  # a decoder's pad token, padding side, pair separator
            run_config["tokenizer"] = self.tokenizer_setup.changes()
        if self.validation is not None:  # the training examples come from the rest of the file
            run_config["validation"] = {"size": len(self.validation), "seed": VALIDATION_SEED}
        if self.train_fn is not train_and_evaluate:
            fn = self.train_fn
            run_config["train_fn"] = f"{fn.__module__}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        return run_config

    def config_of(self, request: RunRequest) -> dict:
        """The run configuration (the store's key) of ``request``."""
        return self.run_config(request.knob, request.lr, request.seed, full=request.full)

    def stored(self, request: RunRequest) -> dict | None:
        """The stored result of ``request``, or None: never run, or run on other weights of a
        local model folder (then measured again, with one warning)."""
        record = self.store.record(self.config_of(request))
        if record is None:
            return None
        fingerprint = record.get("model_fingerprint")
        if fingerprint is None or fingerprint == self.fingerprint:  # records without a fingerprint are trusted
            return record["result"]
        if not self.warned_stale:
            warnings.warn(f"{self.config.model} has changed since runs of it were stored in {self.store.path}: "
                          "those runs are ignored and measured again", RuntimeWarning, stacklevel=3)
        self.warned_stale = True
        return None

    def keep(self, request: RunRequest, result: dict, **extra) -> None:
        """Store the finished ``result`` of ``request`` (``extra`` fields go into its record)."""
        self.store.put(self.config_of(request), result, model_fingerprint=self.fingerprint, **extra)

    def execute(self, request: RunRequest, *, progress: bool | None = None) -> dict:
        """Train ``request`` and return its result dict (``RunResult.to_dict()``); the store is not touched."""
        seed, lr = request.seed, request.lr
        if request.full:
            build, description = (lambda model: model), f"full fine-tuning seed={seed}"

            def fit(model, train, **kw):
                return train(model, **kw)
        else:
            knob = request.knob
            name = self.method.name if knob is None else f"{self.method.knob.name}={knob}"
            extra = {"subspace": self.subspace_config(knob, seed), "projections": self.projections} \
                if self.is_subspace else {}

            def build(model):
                return self.method.build(model, knob, head=self.head, head_names=self.head_names, seed=seed, **extra)

            description, fit = f"{name} lr={lr:g} seed={seed}", self.method.fit
        model = build(self.load_model(seed))
        config = self.train_config(lr, seed)

        def train(built, **kwargs):
            return self.train_fn(built, self.task, self.tokenizer, self.train, self.dev, config, **kwargs)

        return fit(model, train, device=self.config.device, progress=self.progress if progress is None else progress,
                   description=description, validation=self.validation).to_dict()
