"""Cache-directory resolution and crash-safe, never-overwriting file publication.

Every cached artefact (trained tokenizers, token stores) is written to a private temporary name
first and then published under its final name with an operation that fails if the final name
already exists. An interrupted run therefore leaves at most a stray temporary file, never a
half-written cache entry, and two processes racing on the same entry cannot clobber each other:
the loser discards its copy and uses the winner's.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pathlib
import shutil
import time
import uuid

from absl import logging

CACHE_ENV = "SIMPLIFIED_TF_CACHE"


def cache_root(cache_dir: str = "") -> pathlib.Path:
    """The cache root: `cache_dir` if set, else $SIMPLIFIED_TF_CACHE, else ~/.cache/simplified_tf."""
    raw = cache_dir or os.environ.get(CACHE_ENV, "") or "~/.cache/simplified_tf"
    return pathlib.Path(raw).expanduser()


def temp_sibling(path: pathlib.Path) -> pathlib.Path:
    """A unique temporary name next to `path` (same filesystem, so renames are atomic)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def publish_file(tmp: pathlib.Path, final: pathlib.Path) -> bool:
    """Moves the finished file `tmp` to `final` unless `final` exists. Returns True if published.

    `os.link` refuses to replace an existing name, which makes the publish atomic and
    non-overwriting; the temporary file is always removed.
    """
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        return False
    except OSError:  # filesystems without hard links: check-then-rename (small race window)
        if final.exists():
            return False
        os.rename(tmp, final)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def publish_dir(tmp: pathlib.Path, final: pathlib.Path) -> bool:
    """Renames the finished directory `tmp` to `final` unless `final` exists. True if published."""
    try:
        os.rename(tmp, final)  # fails with ENOTEMPTY/EEXIST if `final` is a non-empty dir
        return True
    except OSError as e:
        if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False


def discard_dir(path: pathlib.Path, reason: str) -> None:
    """Removes a corrupted cache directory: first renamed aside (atomic), then deleted."""
    aside = path.with_name(f".{path.name}.corrupt-{int(time.time())}-{uuid.uuid4().hex[:6]}")
    logging.warning("Discarding corrupted cache %s: %s", path, reason)
    try:
        os.rename(path, aside)
    except FileNotFoundError:  # another process already discarded it
        return
    shutil.rmtree(aside, ignore_errors=True)


def file_sha256(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
