"""GLUE tasks: specs, label maps, and readers for the official TSV layout or the hub copy.

`load_glue_task(name, glue_dir)` reads `<glue_dir>/<Task>/train.tsv` and the dev file(s) of the
layout the GLUE benchmark's download script writes (`CoLA/`, `SST-2/`, `MRPC/`, `QQP/`, `STS-B/`,
`MNLI/` with `dev_matched.tsv` and `dev_mismatched.tsv`, `QNLI/`, `RTE/`, `WNLI/`). Scores are
reported on the dev files (the test labels are not public). `glue_dir="hf:<dataset>"`
(e.g. "hf:nyu-mll/glue") reads the same tasks from the Hugging Face hub instead; that needs the
optional `.[hf]` extra and network access, and is never needed offline.

TSV rules: tab-separated, no quoting (GLUE's sentences contain unbalanced quotes). Files with a
header are read by column name, so extra columns do not matter but missing ones are an error; CoLA
has no header and exactly 4 columns (source, label, original judgement, sentence). A few short rows
(at most 0.1%) are skipped with a warning, since some GLUE dumps contain them; more is an error.
Labels outside the task's label map are an error naming the file, line and value.

Label ids follow the hub copy, so models trained on either source agree: CoLA 1 = acceptable,
SST-2 1 = positive, MRPC 1 = equivalent, QQP 1 = duplicate, MNLI entailment / neutral /
contradiction = 0 / 1 / 2, QNLI and RTE entailment / not_entailment = 0 / 1, WNLI 0 / 1; STS-B is
regression on the 0-5 similarity score.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys

import numpy as np
from absl import logging

from simplified_tf.downstream.examples import Examples, TaskData, TaskSpec
from trainloop.config_util import ConfigError, check_choice

_BINARY = {"0": 0, "1": 1}
_NLI2 = {"entailment": 0, "not_entailment": 1}
_NLI3 = {"entailment": 0, "neutral": 1, "contradiction": 2}
MAX_SKIPPED_FRACTION = 1e-3


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """Where a GLUE task lives on disk and on the hub, and how its columns map to examples."""

    spec: TaskSpec
    folder: str  # <glue_dir>/<folder>/
    files: dict[str, str]  # split -> file name ("train" and every eval split)
    text_a: str  # column name (index as a string for header-less CoLA)
    text_b: str | None
    label: str
    label_map: dict[str, int] | None  # None: float regression target
    hub_config: str
    hub_columns: tuple[str, str | None]
    hub_splits: dict[str, str]  # split -> hub split name
    header: bool = True


def _task(name, display, folder, metrics, a, b, label, label_map, hub_cols, **kw) -> GlueTask:
    names = tuple(sorted(label_map, key=label_map.get)) if label_map else ()
    evals = kw.pop("eval_files", {"validation": "dev.tsv"})
    hub_splits = kw.pop("hub_splits", {"train": "train", "validation": "validation"})
    spec = TaskSpec(
        name=name,
        display=display,
        num_labels=len(label_map) if label_map else 1,
        metrics=metrics,
        eval_splits=tuple(evals),
        label_names=names,
        in_average=kw.pop("in_average", True),
    )
    return GlueTask(
        spec=spec,
        folder=folder,
        files={"train": "train.tsv", **evals},
        text_a=a,
        text_b=b,
        label=label,
        label_map=label_map,
        hub_config=name,
        hub_columns=hub_cols,
        hub_splits=hub_splits,
        **kw,
    )


GLUE_TASKS = {
    t.spec.name: t
    for t in (
        _task("cola", "CoLA", "CoLA", ("mcc",), "3", None, "1", _BINARY, ("sentence", None),
              header=False),
        _task("sst2", "SST-2", "SST-2", ("accuracy",), "sentence", None, "label", _BINARY,
              ("sentence", None)),
        _task("mrpc", "MRPC", "MRPC", ("f1", "accuracy"), "#1 String", "#2 String", "Quality",
              _BINARY, ("sentence1", "sentence2")),
        _task("qqp", "QQP", "QQP", ("f1", "accuracy"), "question1", "question2", "is_duplicate",
              _BINARY, ("question1", "question2")),
        _task("stsb", "STS-B", "STS-B", ("pearson", "spearman"), "sentence1", "sentence2",
              "score", None, ("sentence1", "sentence2")),
        _task("mnli", "MNLI", "MNLI", ("accuracy",), "sentence1", "sentence2", "gold_label",
              _NLI3, ("premise", "hypothesis"),
              eval_files={"matched": "dev_matched.tsv", "mismatched": "dev_mismatched.tsv"},
              hub_splits={"train": "train", "matched": "validation_matched",
                          "mismatched": "validation_mismatched"}),
        _task("qnli", "QNLI", "QNLI", ("accuracy",), "question", "sentence", "label", _NLI2,
              ("question", "sentence")),
        _task("rte", "RTE", "RTE", ("accuracy",), "sentence1", "sentence2", "label", _NLI2,
              ("sentence1", "sentence2")),
        _task("wnli", "WNLI", "WNLI", ("accuracy",), "sentence1", "sentence2", "label", _BINARY,
              ("sentence1", "sentence2"), in_average=False),
    )
}  # fmt: skip
GLUE_NAMES = tuple(GLUE_TASKS)
# The 9 scores of the GLUE average (He & Hofmann 2024, Table 1; Cramming): WNLI is not one of them.
GLUE_AVERAGE = ("MNLI-m", "MNLI-mm", "SST-2", "STS-B", "RTE", "QNLI", "QQP", "MRPC", "CoLA")


def parse_label(task: GlueTask, raw: str, where: str):
    raw = raw.strip()
    if task.label_map is None:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(
                f"{where}: {task.spec.display} label {raw!r} is not a number (STS-B scores are "
                "floats in [0, 5])."
            ) from None
    if raw not in task.label_map:
        raise ConfigError(
            f"{where}: {task.spec.display} label {raw!r} is not one of {', '.join(task.label_map)}."
        )
    return task.label_map[raw]


def _labels_array(task: GlueTask, labels: list) -> np.ndarray:
    return np.asarray(labels, np.float32 if task.label_map is None else np.int32)


def read_tsv(task: GlueTask, path: str) -> Examples:
    """The examples of one GLUE TSV file (see the module docstring for the rules)."""
    if not os.path.isfile(path):
        raise ConfigError(
            f"GLUE file {path} does not exist. {task.spec.display} needs "
            f"{', '.join(task.files.values())} in {os.path.dirname(path)} (the layout of GLUE's "
            "download script), or use glue_dir='hf:nyu-mll/glue' with the .[hf] extra."
        )
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.header:
        if not rows:
            raise ConfigError(f"GLUE file {path} is empty (expected a header row).")
        header = [h.strip().lstrip("\ufeff") for h in rows[0]]  # MRPC dumps may keep a BOM
        wanted = [c for c in (task.text_a, task.text_b, task.label) if c is not None]
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ConfigError(
                f"GLUE file {path} has the wrong columns for {task.spec.display}: missing "
                f"{missing}; found {header}. Expected a header with {wanted} (GLUE's TSV layout)."
            )
        cols = [header.index(c) for c in wanted]
        body, first_line = rows[1:], 2
    else:
        if rows and len(rows[0]) != 4:
            raise ConfigError(
                f"GLUE file {path} has the wrong columns for {task.spec.display}: {len(rows[0])} "
                f"fields in line 1 ({rows[0][:4]}); expected 4 without a header (source, label, "
                "original judgement, sentence)."
            )
        cols = [int(task.text_a), int(task.label)]
        body, first_line = rows, 1
    need = max(cols) + 1
    text_a, text_b, labels, skipped = [], [], [], 0
    for i, row in enumerate(body):
        if len(row) < need:
            skipped += 1
            continue
        text_a.append(row[cols[0]])
        if task.text_b is not None:
            text_b.append(row[cols[1]])
        labels.append(parse_label(task, row[cols[-1]], f"{path}:{first_line + i}"))
    if skipped > MAX_SKIPPED_FRACTION * max(len(body), 1):
        raise ConfigError(
            f"GLUE file {path}: {skipped} of {len(body)} rows have fewer than {need} tab-separated "
            f"fields; this is not {task.spec.display}'s TSV layout."
        )
    if skipped:
        logging.warning("%s: skipped %d short rows of %d.", path, skipped, len(body))
    if not labels:
        raise ConfigError(f"GLUE file {path} has no examples.")
    b = tuple(text_b) if task.text_b is not None else None
    return Examples(tuple(text_a), b, _labels_array(task, labels))


def examples_from_records(task: GlueTask, records) -> Examples:
    """Examples from hub-style records (dicts with the hub's column names and int/float labels)."""
    a_col, b_col = task.hub_columns
    text_a, text_b, labels = [], [], []
    for r in records:
        text_a.append(r[a_col])
        if b_col is not None:
            text_b.append(r[b_col])
        labels.append(r["label"])
    b = tuple(text_b) if b_col is not None else None
    return Examples(tuple(text_a), b, _labels_array(task, labels))


def _load_hub(task: GlueTask, dataset: str) -> dict[str, Examples]:
    try:
        import datasets  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise ConfigError(
            f"glue_dir='hf:{dataset}' needs the optional `datasets` package: "
            "`pip install -e '.[hf]'` (and network access). Offline, pass the folder of GLUE's TSV "
            "files as glue_dir."
        ) from None
    out = {}
    for split, hub_split in task.hub_splits.items():
        try:
            ds = datasets.load_dataset(dataset, task.hub_config, split=hub_split)
        except Exception as e:  # offline, unknown name, ...: all user-fixable
            raise ConfigError(
                f"Could not load {dataset!r} ({task.hub_config}, split {hub_split}): "
                f"{type(e).__name__}: {e}. Offline, pass the folder of GLUE's TSV files as "
                "glue_dir."
            ) from e
        out[split] = examples_from_records(task, ds)
    return out


def load_glue_task(name: str, glue_dir: str) -> TaskData:
    """Train and dev examples of the GLUE task `name` from a TSV folder or "hf:<dataset>"."""
    check_choice("downstream task (GLUE)", name, GLUE_NAMES)
    task = GLUE_TASKS[name]
    if glue_dir.startswith("hf:"):
        splits = _load_hub(task, glue_dir[3:])
    else:
        if not glue_dir or not os.path.isdir(glue_dir):
            raise ConfigError(
                f"GLUE directory {glue_dir!r} does not exist. Set downstream.glue_dir to the folder "
                f"holding {', '.join(t.folder for t in GLUE_TASKS.values())} (GLUE's download "
                "script layout), or to 'hf:nyu-mll/glue' (needs the .[hf] extra and network)."
            )
        folder = os.path.join(glue_dir, task.folder)
        splits = {s: read_tsv(task, os.path.join(folder, f)) for s, f in task.files.items()}
    evals = {s: splits[s] for s in task.spec.eval_splits}
    return TaskData(task.spec, splits["train"], evals)
