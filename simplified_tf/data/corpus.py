"""Text corpora: the embedded Python standard library, local files/folders, or HF datasets.

A corpus is an ordered list of documents (name, text). Names are stable and unique (paths relative
to the corpus root, `file.jsonl:LINE` for JSON lines, `hf:<name>:INDEX` for datasets), so the
train/validation split, which hashes names, does not depend on where the corpus lives on disk.

Sources:
- `"stdlib"`: the `.py` files of the running interpreter's standard library
  (`sysconfig.get_paths()["stdlib"]`), without site-packages, `__pycache__` and test folders; about
  734 files and 12 MB for CPython 3.11. Always available offline, so it is the default.
- a local file or folder (searched recursively) of `.py`, `.txt` and `.jsonl` files; a `.jsonl` line
  is one document taken from its `text_field`.
- `"hf:<name>"`: the `train` split of a Hugging Face dataset (needs the optional `datasets` package
  and network or a warm HF cache).

Unreadable, binary (NUL bytes) or non-UTF-8 files are skipped and counted in the log; only a corpus
with nothing usable left is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import sysconfig

from absl import logging

from trainloop.config_util import ConfigError

TEXT_EXTENSIONS = (".py", ".txt", ".jsonl")
# Folder names never descended into: installed packages, bytecode, and test suites.
_EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
)


@dataclasses.dataclass(frozen=True)
class Document:
    name: str
    text: str


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Documents in a deterministic order, plus bookkeeping for logs and cache keys."""

    source: str
    documents: tuple[Document, ...]
    num_skipped: int  # files or lines that could not be read as text


def fingerprint_documents(documents) -> str:
    """Hash of the documents' names and contents, in order (a cache key)."""
    h = hashlib.sha256()
    for doc in documents:
        h.update(doc.name.encode("utf-8", "surrogatepass") + b"\0")
        h.update(hashlib.sha256(doc.text.encode("utf-8")).digest())
    return h.hexdigest()


def stdlib_root() -> pathlib.Path:
    return pathlib.Path(sysconfig.get_paths()["stdlib"])


def _walk(root: pathlib.Path, extensions: tuple[str, ...]) -> list[pathlib.Path]:
    """Files under `root` with the given extensions, sorted, skipping excluded and hidden folders."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames if d not in _EXCLUDED_DIRS and not d.startswith(".")
        )
        found += [pathlib.Path(dirpath, f) for f in filenames if f.endswith(extensions)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _read_text(path: pathlib.Path) -> str | None:
    """The file's UTF-8 text, or None if it is unreadable, binary or not UTF-8."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        logging.debug("Skipping unreadable %s: %s", path, e)
        return None
    if b"\0" in raw:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _jsonl_documents(path: pathlib.Path, name: str, text: str, text_field: str):
    """Returns (documents, number of malformed lines) of a JSON-lines file."""
    docs, bad = [], 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(record, dict) or text_field not in record:
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise ConfigError(
                f"{path}:{lineno} has no text field {text_field!r} (found {keys}). "
                "Set data.text_field to the key holding the document text."
            )
        if not isinstance(record[text_field], str):
            bad += 1
            continue
        docs.append(Document(f"{name}:{lineno}", record[text_field]))
    return docs, bad


def _local_corpus(root: pathlib.Path, files: list[pathlib.Path], text_field: str):
    docs, skipped = [], 0
    for path in files:
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        text = _read_text(path)
        if text is None:
            skipped += 1
            continue
        if path.suffix == ".jsonl":
            jdocs, bad = _jsonl_documents(path, name, text, text_field)
            docs += jdocs
            skipped += bad
        else:
            docs.append(Document(name, text))
    return docs, skipped


def _hf_corpus(name: str, text_field: str, max_documents: int):
    try:
        import datasets  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise ConfigError(
            f"data.source='hf:{name}' needs the optional `datasets` package, which is not "
            "installed. Fix: `pip install -e '.[hf]'` (and network access or a warm HF cache), "
            "or use data.source='stdlib' or a local path to .py/.txt/.jsonl files."
        ) from None
    split = f"train[:{max_documents}]" if max_documents > 0 else "train"
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # offline, unknown name, ...: all user-fixable
        raise ConfigError(
            f"Could not load dataset {name!r} (split {split!r}): {type(e).__name__}: {e}. "
            "It needs network access or a warm HF cache; offline, use data.source='stdlib' or a "
            "local path."
        ) from e
    if text_field not in ds.column_names:
        raise ConfigError(
            f"Dataset {name!r} has no text field {text_field!r}; columns: {ds.column_names}."
        )
    docs = [Document(f"hf:{name}:{i}", t) for i, t in enumerate(ds[text_field]) if t]
    return docs, 0


def load_corpus(source: str, *, text_field: str = "text", max_documents: int = 0) -> Corpus:
    """Loads the documents of `source` ("stdlib", a local path, or "hf:<name>").

    `max_documents > 0` keeps the first documents in the deterministic order.
    """
    if not source:
        raise ConfigError("data.source is empty; use 'stdlib', a local path, or 'hf:<name>'.")
    if max_documents < 0:
        raise ConfigError(f"data.max_documents={max_documents} must be >= 0 (0 = no cap).")
    if source.startswith("hf:"):
        docs, skipped = _hf_corpus(source[3:], text_field, max_documents)
        where = source
    else:
        if source == "stdlib":
            root, extensions = stdlib_root(), (".py",)
        else:
            root, extensions = pathlib.Path(source).expanduser(), TEXT_EXTENSIONS
        if not root.exists():
            raise ConfigError(
                f"data.source={source!r}: path {root} does not exist. Use 'stdlib', "
                f"'hf:<name>', or a file/folder of {', '.join(TEXT_EXTENSIONS)} files."
            )
        if root.is_file():
            if not root.name.endswith(extensions):
                raise ConfigError(
                    f"data.source={source!r}: {root} is not one of the accepted file types "
                    f"({', '.join(extensions)})."
                )
            files = [root]
        else:
            files = _walk(root, extensions)
        if not files:
            raise ConfigError(
                f"data.source={source!r}: no {', '.join(extensions)} files found under {root} "
                "(test folders, site-packages and hidden folders are not searched)."
            )
        docs, skipped = _local_corpus(root, files, text_field)
        where = str(root)
    num_empty = sum(1 for d in docs if not d.text.strip())
    docs = [d for d in docs if d.text.strip()]
    if max_documents > 0:
        docs = docs[:max_documents]
    if not docs:
        raise ConfigError(
            f"data.source={source!r}: no usable text in {where} ({skipped} unreadable, binary or "
            f"non-UTF-8 files/lines skipped, {num_empty} empty). Accepted: UTF-8 "
            f"{', '.join(TEXT_EXTENSIONS)} files."
        )
    logging.info(
        "Corpus %s: %d documents, %.1f MB (%d skipped as unreadable/binary/non-UTF-8, %d empty).",
        where,
        len(docs),
        sum(len(d.text) for d in docs) / 1e6,
        skipped,
        num_empty,
    )
    return Corpus(source=source, documents=tuple(docs), num_skipped=skipped)


def split_documents(
    documents: tuple[Document, ...], val_fraction: float
) -> tuple[list[Document], list[Document]]:
    """Deterministic document-level split into (train, validation) by a hash of each name.

    A document goes to validation iff hash(name) / 2**64 < val_fraction, so the assignment of a
    document never depends on the others (growing `max_documents` keeps earlier decisions).
    With val_fraction > 0 and at least two documents, validation gets at least one document (the
    lowest hash) and train keeps at least one.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction} must be in [0, 1).")

    def unit(doc):
        digest = hashlib.sha256(doc.name.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    u = [unit(d) for d in documents]
    is_val = [x < val_fraction for x in u]
    if val_fraction > 0 and len(documents) >= 2:
        order = sorted(range(len(documents)), key=u.__getitem__)
        if not any(is_val):
            is_val[order[0]] = True
        if all(is_val):
            is_val[order[-1]] = False
    train = [d for d, v in zip(documents, is_val, strict=True) if not v]
    val = [d for d, v in zip(documents, is_val, strict=True) if v]
    return train, val
