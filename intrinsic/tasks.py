"""The GLUE task registry, and loading a task's train and dev splits.

A :class:`Task` names its text columns, its labels (``label_names`` in id order; ``None`` for
regression), its metrics and the one metric d90 uses. Data comes from the Hugging Face hub
(``nyu-mll/glue``) by default, or, with ``data_dir``, from a folder in the layout of GLUE's own
download script (``<data_dir>/MRPC/train.tsv``, …). A user's own CSV, TSV or JSONL task is
described by its text and label columns (:func:`custom_task`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import metrics as metric_functions
from .errors import ConfigError


@dataclass(frozen=True)
class GlueLayout:
    """Where a task lives in GLUE's download folder, and which TSV fields hold what.

    Fields are header names, or column indices for files without a header (CoLA).
    """

    folder: str
    text_fields: tuple[str | int, ...]
    label_field: str | int
    dev_file: str = "dev.tsv"
    has_header: bool = True


@dataclass(frozen=True)
class Task:
    name: str
    text_columns: tuple[str, ...]
    label_names: tuple[str, ...] | None  # None: regression
    metrics: tuple[str, ...]
    d90_metric: str
    hf_path: str | None = None
    hf_config: str | None = None
    hf_dev_split: str = "validation"
    glue: GlueLayout | None = None
    files: dict = field(default_factory=dict)  # custom tasks: {"train": path, "dev": path}
    label_column: str = "label"  # custom tasks and the hub

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.is_regression else len(self.label_names)

    def label_id(self, raw) -> int | float:
        """The label id of a raw label: an id ("1", 1), a label name ("entailment"), or a score."""
        if self.is_regression:
            return float(raw)
        text = str(raw).strip()
        if text in self.label_names:
            return self.label_names.index(text)
        if text.lstrip("-").isdigit() and 0 <= int(text) < self.num_labels:
            return int(text)
        raise ValueError(
            f"label {text!r} is not one of task {self.name!r}'s labels {list(self.label_names)} "
            f"or ids 0…{self.num_labels - 1}"
        )


TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("cola", ("sentence",), ("unacceptable", "acceptable"), ("matthews_correlation", "accuracy"),
             "matthews_correlation", "nyu-mll/glue", "cola",
             glue=GlueLayout("CoLA", (3,), 1, has_header=False)),
        Task("sst2", ("sentence",), ("negative", "positive"), ("accuracy",), "accuracy", "nyu-mll/glue", "sst2",
             glue=GlueLayout("SST-2", ("sentence",), "label")),
        Task("mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("accuracy", "f1"),
             "accuracy", "nyu-mll/glue", "mrpc",
             glue=GlueLayout("MRPC", ("#1 String", "#2 String"), "Quality")),
        Task("qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), ("accuracy", "f1"),
             "accuracy", "nyu-mll/glue", "qqp",
             glue=GlueLayout("QQP", ("question1", "question2"), "is_duplicate")),
        Task("stsb", ("sentence1", "sentence2"), None, ("pearson", "spearman"), "pearson", "nyu-mll/glue", "stsb",
             glue=GlueLayout("STS-B", ("sentence1", "sentence2"), "score")),
        Task("mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), ("accuracy",),
             "accuracy", "nyu-mll/glue", "mnli", hf_dev_split="validation_matched",
             glue=GlueLayout("MNLI", ("sentence1", "sentence2"), "gold_label", dev_file="dev_matched.tsv")),
        Task("qnli", ("question", "sentence"), ("entailment", "not_entailment"), ("accuracy",), "accuracy",
             "nyu-mll/glue", "qnli", glue=GlueLayout("QNLI", ("question", "sentence"), "label")),
        Task("rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), ("accuracy",), "accuracy",
             "nyu-mll/glue", "rte", glue=GlueLayout("RTE", ("sentence1", "sentence2"), "label")),
        Task("wnli", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("accuracy",), "accuracy",
             "nyu-mll/glue", "wnli", glue=GlueLayout("WNLI", ("sentence1", "sentence2"), "label")),
    ]
}


def get_task(name: str) -> Task:
    """The registered task called ``name`` (case and '-' insensitive: "SST-2" is "sst2")."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}, or describe your own "
                         "with custom_task(train=…, dev=…, text_columns=…, label_column=…)")
    return TASKS[key]


@dataclass
class Split:
    """Examples of one split: ``texts[i]`` is a tuple of 1 or 2 strings, ``labels[i]`` an id or score.

    ``cache`` holds what other modules compute from these examples (``training.tokenize`` keeps
    the token ids per tokenizer and ``max_length``), so the runs of one measurement, which share
    its splits, tokenise once. The examples must not change once the split is in use.
    """

    texts: list[tuple[str, ...]]
    labels: list
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        return self if n is None else Split(self.texts[:n], self.labels[:n])


def load_task(task: Task | str, data_dir: str | Path | None = None,
              max_train_samples: int | None = None) -> tuple[Split, Split]:
    """(train, dev) of ``task``: from ``data_dir`` (GLUE layout), its own files, or the hub."""
    task = get_task(task) if isinstance(task, str) else task
    if task.files:
        train, dev = (_read_table(task, Path(task.files[s])) for s in ("train", "dev"))
    elif data_dir is not None:
        train, dev = _read_glue_folder(task, Path(data_dir))
    else:
        train, dev = _load_from_hub(task)
    return train.head(max_train_samples), dev


def hold_out(train: Split, size: int, seed: int = 0) -> tuple[Split, Split]:
    """(rest, validation): ``size`` examples of ``train`` drawn without replacement by a permutation
    seeded with ``seed``, and the others in their original order. The two are disjoint, and the
    same (train, size, seed) always gives the same split."""
    if not 0 < size < len(train):
        raise ConfigError("validation_size", f"must be between 1 and {len(train) - 1} for {len(train)} training "
                                             f"examples, got {size}")
    generator = torch.Generator().manual_seed(seed)
    chosen = set(torch.randperm(len(train), generator=generator)[:size].tolist())
    held = sorted(chosen)
    rest = [i for i in range(len(train)) if i not in chosen]
    pick = lambda index: Split([train.texts[i] for i in index], [train.labels[i] for i in index])  # noqa: E731
    return pick(rest), pick(held)


def chance_scores(task: Task, train: Split, dev: Split) -> dict[str, float]:
    """Dev metrics of the trivial predictor: the majority training class (train mean for regression)."""
    if task.is_regression:
        mean = sum(train.labels) / len(train)
        predictions = [mean] * len(dev)
    else:
        majority = Counter(train.labels).most_common(1)[0][0]
        predictions = [majority] * len(dev)
    return metric_functions.compute(task.metrics, predictions, dev.labels)


def custom_task(train: str | Path, dev: str | Path, text_columns: tuple[str, ...] | list[str],
                label_column: str, label_names: tuple[str, ...] | list[str] | None = None,
                metrics: tuple[str, ...] | None = None, name: str | None = None) -> Task:
    """Describe a task in your own CSV, TSV or JSONL files (chosen by extension).

    ``label_names`` in id order; ``None`` means labels are read from the training file and
    sorted (ids 0…k−1), or, with ``metrics`` of Pearson/Spearman, that the task is a regression.
    """
    train, dev = Path(train), Path(dev)
    for path in (train, dev):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: give the path of an existing CSV, TSV or JSONL file")
    regression = metrics is not None and set(metrics) <= {"pearson", "spearman"}
    metrics = tuple(metrics or ("accuracy",))
    unknown = [m for m in metrics if m not in metric_functions.METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {sorted(metric_functions.METRICS)}")
    if label_names is None and not regression:
        raw = {str(row[label_column]).strip() for row in _table_rows(train, tuple(text_columns), label_column)}
        label_names = tuple(sorted(raw, key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s)))
    return Task(name or train.parent.name or "custom", tuple(text_columns),
                None if regression else tuple(label_names), metrics, metrics[0],
                files={"train": str(train), "dev": str(dev)}, label_column=label_column)


# ---------------------------------------------------------------------------- readers
def _read_glue_folder(task: Task, data_dir: Path) -> tuple[Split, Split]:
    if task.glue is None:
        raise ValueError(f"task {task.name!r} has no GLUE folder layout")
    folder = data_dir / task.glue.folder
    if not folder.is_dir():
        raise ConfigError("data_dir", f"must hold GLUE's task folders ({task.glue.folder}/train.tsv, …), as written "
                                      f"by GLUE's download script: {folder} not found")
    return _read_glue_tsv(task, folder / "train.tsv"), _read_glue_tsv(task, folder / task.glue.dev_file)


def _read_glue_tsv(task: Task, path: Path) -> Split:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the GLUE folder of {task.name!r} is incomplete")
    layout = task.glue
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if layout.has_header:
            header = next(reader, [])
            missing = [c for c in (*layout.text_fields, layout.label_field) if c not in header]
            if missing:
                raise ValueError(f"{path}: header lacks {missing}; is this the {task.name.upper()} TSV from GLUE?")
            columns = [header.index(c) for c in (*layout.text_fields, layout.label_field)]
        else:
            columns = [*layout.text_fields, layout.label_field]
        texts, labels = [], []
        first_line = 2 if layout.has_header else 1
        for line, row in enumerate(reader, start=first_line):
            if len(row) <= max(columns):
                raise ValueError(f"{path}:{line}: expected at least {max(columns) + 1} tab-separated fields, "
                                 f"got {len(row)}; the file is malformed or not the {task.name} TSV")
            try:
                labels.append(task.label_id(row[columns[-1]]))
            except ValueError as error:
                raise ValueError(f"{path}:{line}: {error}") from None
            texts.append(tuple(row[c] for c in columns[:-1]))
    return Split(texts, labels)


def _table_rows(path: Path, text_columns: tuple[str, ...], label_column: str):
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8-sig", newline="") as f:
        if suffix == ".jsonl":
            rows = [json.loads(line) for line in f if line.strip()]
        elif suffix in (".csv", ".tsv"):
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ","))
        else:
            raise ValueError(f"{path}: unsupported extension {suffix!r}; use .csv, .tsv or .jsonl")
    for number, row in enumerate(rows, start=1):
        missing = [c for c in (*text_columns, label_column) if c not in row]
        if missing:
            raise ValueError(f"{path}: row {number} lacks columns {missing}; it has {sorted(row)}")
    return rows


def _read_table(task: Task, path: Path) -> Split:
    rows = _table_rows(path, task.text_columns, task.label_column)
    return Split([tuple(str(r[c]) for c in task.text_columns) for r in rows],
                 [task.label_id(r[task.label_column]) for r in rows])


def _load_from_hub(task: Task) -> tuple[Split, Split]:
    from datasets import load_dataset

    dataset = load_dataset(task.hf_path, task.hf_config)

    def split(name):
        part = dataset[name]
        texts = list(zip(*(part[c] for c in task.text_columns), strict=True))
        return Split(texts, [task.label_id(v) for v in part[task.label_column]])

    return split("train"), split(task.hf_dev_split)
