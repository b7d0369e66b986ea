"""Text corpora: the embedded Python standard library, local files/folders, or HF datasets.

A corpus is an ordered stream of documents (name, text): `open_corpus` returns a `CorpusSource`
whose `documents()` reads them one at a time, so no more than one file (or one block of dataset
rows) is in memory, and whose `fingerprint` identifies the content without reading it (file
names, sizes and modification times; the dataset's own fingerprint for HF). `load_corpus` gathers
the stream into a list for small corpora and tests. Names are stable and unique (paths relative
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
from collections.abc import Callable, Iterator

from absl import logging

from trainloop.config_util import ConfigError, check_min

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


@dataclasses.dataclass
class ScanStats:
    """What a pass over a corpus skipped (filled in while `CorpusSource.documents()` streams)."""

    num_documents: int = 0
    num_bytes: int = 0
    num_skipped: int = 0  # unreadable, binary or non-UTF-8 files; malformed JSON lines
    num_empty: int = 0


def _jsonl_documents(path: pathlib.Path, name: str, text_field: str, stats: ScanStats):
    """Streams the documents of a JSON-lines file line by line; bad lines are counted, not fatal."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; a generator cannot use `with` across yields safely)
    except OSError:
        stats.num_skipped += 1
        return
    with f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                stats.num_skipped += 1
                continue
            if not isinstance(record, dict) or text_field not in record:
                keys = sorted(record) if isinstance(record, dict) else type(record).__name__
                raise ConfigError(
                    f"{path}:{lineno} has no text field {text_field!r} (found {keys}). "
                    "Set data.text_field to the key holding the document text."
                )
            if not isinstance(record[text_field], str):
                stats.num_skipped += 1
                continue
            yield Document(f"{name}:{lineno}", record[text_field])


def _local_documents(root: pathlib.Path, files: list[pathlib.Path], text_field, stats):
    for path in files:
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        if path.suffix == ".jsonl":
            yield from _jsonl_documents(path, name, text_field, stats)
            continue
        text = _read_text(path)
        if text is None:
            stats.num_skipped += 1
            continue
        yield Document(name, text)


def _manifest_fingerprint(root: pathlib.Path, files: list[pathlib.Path], extra: str) -> str:
    """Identifies a local corpus by its files' names, sizes and modification times (no reading)."""
    h = hashlib.sha256(f"local-v1|{extra}".encode())
    for path in files:
        st = path.stat()
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


_HF_ROWS_PER_READ = 1000


def _hf_dataset(name: str, text_field: str, max_documents: int):
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
        ds = datasets.load_dataset(name, split=split)  # Arrow files, memory-mapped from disk
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
    return ds


def _hf_documents(ds, name: str, text_field: str, stats: ScanStats):
    """Reads the text column in blocks of rows (never the whole split as a Python list)."""
    for start in range(0, len(ds), _HF_ROWS_PER_READ):
        block = ds[start : start + _HF_ROWS_PER_READ][text_field]
        for i, text in enumerate(block, start=start):
            if text:
                yield Document(f"hf:{name}:{i}", text)


@dataclasses.dataclass(frozen=True)
class CorpusSource:
    """A corpus opened for streaming; see the module docstring."""

    source: str
    where: str
    fingerprint: str
    max_documents: int
    _stream: Callable[[ScanStats], Iterator[Document]]

    def documents(self, stats: ScanStats | None = None) -> Iterator[Document]:
        """The usable, non-empty documents in order (at most `max_documents`).

        Raises ConfigError at the end of the stream if there were none.
        """
        stats = ScanStats() if stats is None else stats
        for doc in self._stream(stats):
            if not doc.text.strip():
                stats.num_empty += 1
                continue
            stats.num_documents += 1
            stats.num_bytes += len(doc.text)
            yield doc
            if self.max_documents and stats.num_documents >= self.max_documents:
                break
        if stats.num_documents == 0:
            raise ConfigError(
                f"data.source={self.source!r}: no usable text in {self.where} "
                f"({stats.num_skipped} unreadable, binary or non-UTF-8 files/lines skipped, "
                f"{stats.num_empty} empty). Accepted: UTF-8 {', '.join(TEXT_EXTENSIONS)} files."
            )

    def log(self, stats: ScanStats) -> None:
        logging.info(
            "Corpus %s: %d documents, %.1f MB (%d skipped as unreadable/binary/non-UTF-8, "
            "%d empty).",
            self.where,
            stats.num_documents,
            stats.num_bytes / 1e6,
            stats.num_skipped,
            stats.num_empty,
        )


def open_corpus(source: str, *, text_field: str = "text", max_documents: int = 0) -> CorpusSource:
    """Opens `source` ("stdlib", a local path, or "hf:<name>") for streaming; checks it exists.

    `max_documents > 0` keeps the first documents in the deterministic order.
    """
    if not source:
        raise ConfigError("data.source is empty; use 'stdlib', a local path, or 'hf:<name>'.")
    check_min("data.max_documents", max_documents, 0, "0 = no cap")
    extra = f"{text_field}|{max_documents}"
    if source.startswith("hf:"):
        name = source[3:]
        ds = _hf_dataset(name, text_field, max_documents)
        fp = hashlib.sha256(f"hf-v1|{name}|{getattr(ds, '_fingerprint', '')}|{extra}".encode())
        stream = lambda stats: _hf_documents(ds, name, text_field, stats)
        return CorpusSource(source, source, fp.hexdigest(), max_documents, stream)
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
    fp = _manifest_fingerprint(root, files, extra)
    stream = lambda stats: _local_documents(root, files, text_field, stats)
    return CorpusSource(source, str(root), fp, max_documents, stream)


def load_corpus(source: str, *, text_field: str = "text", max_documents: int = 0) -> Corpus:
    """All documents of `source` in memory (see `open_corpus` to stream them instead)."""
    opened = open_corpus(source, text_field=text_field, max_documents=max_documents)
    stats = ScanStats()
    docs = tuple(opened.documents(stats))
    opened.log(stats)
    return Corpus(source=source, documents=docs, num_skipped=stats.num_skipped)


def is_validation(name: str, val_fraction: float) -> bool:
    """The split rule for one document: hash(name) / 2**64 < val_fraction."""
    return unit_hash(name) < val_fraction


def unit_hash(name: str) -> float:
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def check_val_fraction(val_fraction: float) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={val_fraction} must be in [0, 1).")


def split_documents(
    documents: tuple[Document, ...], val_fraction: float
) -> tuple[list[Document], list[Document]]:
    """Deterministic document-level split into (train, validation) by a hash of each name.

    A document goes to validation iff hash(name) / 2**64 < val_fraction, so the assignment of a
    document never depends on the others (growing `max_documents` keeps earlier decisions).
    With val_fraction > 0 and at least two documents, validation gets at least one document (the
    lowest hash) and train keeps at least one.
    """
    check_val_fraction(val_fraction)
    u = [unit_hash(d.name) for d in documents]
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
