"""An offline downstream suite built from a Python corpus (default: the standard library).

Three tasks whose labels are true by construction, so they can be checked:
- `acceptability` (CoLA-like, MCC): a real code snippet (label 1) or a snippet with one small
  corruption (label 0): a bracket, colon or quote deleted, a keyword inserted, or a token
  doubled. Python's own parser decides: every label-1 text passes `ast.parse` and every label-0
  text fails it. The classes are balanced.
- `pair` (MRPC-like, F1 and accuracy): do two snippets come from the same module (label 1) or
  from two different modules (label 0)? Balanced. Same-module pairs are drawn at most
  `pair_window` snippets apart (0: anywhere in the module), so they tend to share names, as
  paraphrases share words.
- `topic` (SST-like, accuracy): which top-level package a snippet comes from, among the
  `topics` largest packages that have at least `min_topic_files` files in both splits; an equal
  number of examples per package.

Snippets are whole statements of 1 to `max_lines` lines and `min_chars` to `max_chars`
characters, dedented, that parse on their own; docstrings and texts that occur in more than one
file are left out. Files, not snippets, are split: a file is an evaluation file iff the hash of its
name (and `seed`) falls below `eval_fraction`, so no source file contributes to both splits. The
examples of each split are drawn with a seeded generator, so the suite is a pure function of the
corpus and the config. It depends on the Python version (the standard library changes), so a
table names the interpreter it ran on.

The WordPiece tokenizer drops whitespace, so no corruption relies on indentation or spacing: each
one changes a visible token.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import textwrap
import warnings
from collections import Counter, defaultdict

import ml_collections
import numpy as np

from simplified_tf.data import corpus as corpus_lib
from simplified_tf.downstream.examples import Examples, TaskData, TaskSpec
from trainloop.config_util import ConfigError, check_choice, check_min

CODE_TASKS = ("acceptability", "pair", "topic")
_KEYWORDS = ("def", "class", "return", "import", "lambda", "in", "if", "else", "for", "with")
_BRACKETS = "()[]{}"
_DOUBLED = ("=", ".", ",", "(", ":", "+")


def default_suite_config(**overrides) -> ml_collections.ConfigDict:
    """The `downstream.code` keys with their defaults."""
    c = ml_collections.ConfigDict(
        dict(
            source="stdlib",  # a corpus of `simplified_tf.data.corpus.load_corpus`
            train_examples=640,  # per task (5 epochs of batch 32 = 100 steps)
            eval_examples=512,  # per task
            eval_fraction=0.3,  # of the files
            min_chars=30,
            max_chars=60,  # <= ~45 WordPiece tokens with a 2048-piece vocabulary
            max_lines=1,
            pair_window=3,  # > 0: a same-module pair is at most this many snippets apart
            topics=8,
            min_topic_files=4,  # per split
            seed=0,  # of the file split and the example draw (not of fine-tuning)
        )
    )
    c.update(overrides)
    return c


@dataclasses.dataclass(frozen=True)
class _Pools:
    """Snippets per file name, for the train and the eval files."""

    train: dict[str, list[str]]
    eval: dict[str, list[str]]


def parses(text: str) -> bool:
    """Whether Python's parser accepts `text` (warnings, e.g. invalid escapes, are ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ast.parse(text)
        except (SyntaxError, ValueError):  # ValueError: NUL bytes
            return False
    return True


def _is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def snippets(text: str, *, min_chars: int, max_chars: int, max_lines: int) -> list[str]:
    """Whole statements of `text` that start their line, span <= max_lines lines, have
    min_chars..max_chars characters after dedenting, and parse on their own; in source order."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            return []
    lines = text.splitlines()
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or _is_docstring(node):
            continue
        first, last = node.lineno - 1, node.end_lineno - 1
        if last - first + 1 > max_lines or last >= len(lines):
            continue
        head = lines[first]
        if head[: node.col_offset].strip() or lines[last][node.end_col_offset :].strip():
            continue  # shares a line with other code (e.g. `a = 1; b = 2`)
        snippet = textwrap.dedent("\n".join(lines[first : last + 1])).strip("\n")
        if min_chars <= len(snippet) <= max_chars and parses(snippet):
            out.append((node.lineno, snippet))
    return [s for _, s in sorted(out)]


def _unit_hash(*parts) -> float:
    digest = hashlib.sha256("\0".join(map(str, parts)).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_eval_file(name: str, eval_fraction: float, seed: int) -> bool:
    return _unit_hash("code-suite-split", seed, name) < eval_fraction


@functools.lru_cache(maxsize=4)
def _pools(source, eval_fraction, seed, min_chars, max_chars, max_lines) -> _Pools:
    documents = corpus_lib.load_corpus(source).documents
    per_file = {
        d.name: snippets(d.text, min_chars=min_chars, max_chars=max_chars, max_lines=max_lines)
        for d in documents
    }
    # A text found in several files carries no file or package signal (e.g. `return NotImplemented`).
    seen = Counter(s for snips in per_file.values() for s in set(snips))
    pools = _Pools({}, {})
    for name, snips in per_file.items():
        kept = list(dict.fromkeys(s for s in snips if seen[s] == 1))
        if kept:
            side = pools.eval if is_eval_file(name, eval_fraction, seed) else pools.train
            side[name] = kept
    if not pools.train or not pools.eval:
        raise ConfigError(
            f"downstream.code.source={source!r} gives {len(pools.train)} train and "
            f"{len(pools.eval)} eval files with usable snippets; both must be non-empty (raise "
            "eval_fraction or max_chars, or use a larger corpus)."
        )
    return pools


def _word_starts(text: str) -> list[int]:
    return [
        i
        for i, ch in enumerate(text)
        if ch.isalpha() and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_"))
    ]


# Corruptions: (positions in the text, edit at a position). Each changes a visible token.
_EDITS = (
    (
        lambda t: [i for i, ch in enumerate(t) if ch in _BRACKETS],
        lambda t, i, w: t[:i] + t[i + 1 :],
    ),
    (lambda t: [i for i, ch in enumerate(t) if ch == ":"], lambda t, i, w: t[:i] + t[i + 1 :]),
    (lambda t: [i for i, ch in enumerate(t) if ch in "'\""], lambda t, i, w: t[:i] + t[i + 1 :]),
    (_word_starts, lambda t, i, w: f"{t[:i]}{w} {t[i:]}"),
    (lambda t: [i for i, ch in enumerate(t) if ch in _DOUBLED], lambda t, i, w: t[: i + 1] + t[i:]),
)  # delete a bracket / a colon / a quote; insert a keyword; double a punctuation token


def corrupt(snippet: str, rng: np.random.Generator, tries: int = 20) -> str | None:
    """A one-edit corruption of `snippet` that `ast.parse` rejects, or None if none was found."""
    for _ in range(tries):
        positions, edit = _EDITS[rng.integers(len(_EDITS))]
        where = positions(snippet)
        if not where:
            continue
        word = _KEYWORDS[rng.integers(len(_KEYWORDS))]
        candidate = edit(snippet, where[rng.integers(len(where))], word)
        if not parses(candidate):
            return candidate
    return None


def _flat(pool: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(name, text) for name in sorted(pool) for text in pool[name]]


def _examples(rows: list[tuple], rng, paired: bool) -> Examples:
    """Examples from rows (text_a, [text_b,] label, sources) in a seeded random order."""
    rows = [rows[i] for i in rng.permutation(len(rows))]
    a = tuple(r[0] for r in rows)
    b = tuple(r[1] for r in rows) if paired else None
    labels = np.asarray([r[-2] for r in rows], np.int32)
    return Examples(a, b, labels, tuple(r[-1] for r in rows))


def _acceptability(pool: dict[str, list[str]], n: int, rng) -> Examples:
    flat = _flat(pool)
    rows, want = [], {0: n // 2, 1: n - n // 2}
    for idx in rng.permutation(len(flat)):
        if not any(want.values()):
            break
        label = 1 if want[1] >= want[0] else 0  # alternate, keeping the classes balanced
        name, text = flat[idx]
        text = text if label == 1 else corrupt(text, rng)
        if text is not None:
            rows.append((text, label, (name,)))
            want[label] -= 1
    return _examples(rows, rng, paired=False)


def _pair(pool: dict[str, list[str]], n: int, rng, window: int) -> Examples:
    names = sorted(pool)
    multi = [m for m in names if len(pool[m]) >= 2]
    if len(names) < 2 or not multi:
        raise ConfigError("The pair task needs >= 2 files, one of them with >= 2 snippets.")
    rows = []
    for i in range(n):
        if i % 2 == 0:  # two snippets of one module
            m = multi[rng.integers(len(multi))]
            if window > 0:  # two snippets at most `window` statements apart
                j = int(rng.integers(len(pool[m])))
                near = [k for k in range(j - window, j + window + 1) if k != j]
                near = [k for k in near if 0 <= k < len(pool[m])]
                k = near[rng.integers(len(near))]
            else:
                j, k = rng.choice(len(pool[m]), 2, replace=False)
            rows.append((pool[m][j], pool[m][k], 1, (m, m)))
        else:  # one snippet each of two modules
            m1, m2 = (names[i] for i in rng.choice(len(names), 2, replace=False))
            s1 = pool[m1][rng.integers(len(pool[m1]))]
            s2 = pool[m2][rng.integers(len(pool[m2]))]
            rows.append((s1, s2, 0, (m1, m2)))
    return _examples(rows, rng, paired=True)


def package_of(name: str) -> str | None:
    """Top-level package of a corpus file name ("email/mime/text.py" -> "email"); None for a
    top-level module."""
    return name.split("/")[0] if "/" in name else None


def topic_classes(pools: _Pools, topics: int, min_files: int) -> tuple[str, ...]:
    """The `topics` packages with the most files among those with >= min_files files per split."""
    counts = [Counter(p for p in map(package_of, side) if p) for side in (pools.train, pools.eval)]
    eligible = [p for p in counts[0] if counts[0][p] >= min_files and counts[1][p] >= min_files]
    eligible.sort(key=lambda p: (-(counts[0][p] + counts[1][p]), p))
    if len(eligible) < 2:
        raise ConfigError(
            f"The topic task needs >= 2 packages with >= {min_files} files in each split; found "
            f"{eligible}. Lower downstream.code.min_topic_files or use a larger corpus."
        )
    return tuple(sorted(eligible[:topics]))


def _topic(pool: dict[str, list[str]], classes: tuple[str, ...], n: int, rng) -> Examples:
    by_class = defaultdict(list)
    for name, text in _flat(pool):
        if package_of(name) in classes:
            by_class[package_of(name)].append((name, text))
    rows = []
    for c, cls in enumerate(classes):
        k = n // len(classes) + (c < n % len(classes))
        for i in rng.choice(len(by_class[cls]), k, replace=k > len(by_class[cls])):
            name, text = by_class[cls][i]
            rows.append((text, c, (name,)))
    return _examples(rows, rng, paired=False)


def _suite_pools(cfg: ml_collections.ConfigDict) -> _Pools:
    if not 0.0 < cfg.eval_fraction < 1.0:
        raise ConfigError(f"downstream.code.eval_fraction={cfg.eval_fraction} must be in (0, 1).")
    return _pools(
        str(cfg.source), float(cfg.eval_fraction), int(cfg.seed), int(cfg.min_chars),
        int(cfg.max_chars), int(cfg.max_lines),
    )  # fmt: skip


def task_spec(name: str, cfg: ml_collections.ConfigDict) -> TaskSpec:
    check_choice("downstream task (code suite)", name, CODE_TASKS)
    if name == "acceptability":
        return TaskSpec(name, "Accept.", 2, ("mcc",), label_names=("corrupted", "real"))
    if name == "pair":
        return TaskSpec(name, "Pair", 2, ("f1", "accuracy"), label_names=("other", "same"))
    classes = topic_classes(_suite_pools(cfg), int(cfg.topics), int(cfg.min_topic_files))
    return TaskSpec(name, "Topic", len(classes), ("accuracy",), label_names=classes)


def load_code_task(name: str, cfg: ml_collections.ConfigDict) -> TaskData:
    """Train and eval examples of the offline task `name` ("acceptability" | "pair" | "topic")."""
    spec = task_spec(name, cfg)
    for key in ("train_examples", "eval_examples"):
        check_min(f"downstream.code.{key}", int(cfg[key]), 2)
    pools = _suite_pools(cfg)
    splits = {}
    for split_index, (split, pool, n) in enumerate(
        (("train", pools.train, cfg.train_examples), ("validation", pools.eval, cfg.eval_examples))
    ):
        rng = np.random.default_rng([int(cfg.seed), CODE_TASKS.index(name), split_index])
        if name == "acceptability":
            splits[split] = _acceptability(pool, int(n), rng)
        elif name == "pair":
            splits[split] = _pair(pool, int(n), rng, int(cfg.pair_window))
        else:
            splits[split] = _topic(pool, spec.label_names, int(n), rng)
    return TaskData(spec, splits["train"], {"validation": splits["validation"]})
