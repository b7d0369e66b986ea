"""Where and on what a figure was computed: commit, CPU, load, wall time, runs trained vs reused."""

from __future__ import annotations

import os
import platform
import subprocess


def git_commit(repo: str, ignore: tuple[str, ...] = ()) -> str:
    """HEAD's short hash, with "+dirty" when tracked files differ from it ("unknown" outside git).
    Changes to files matching the `ignore` globs (relative to `repo`) do not count."""
    pathspec = ["--", ".", *(f":!{g}" for g in ignore)] if ignore else []
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", *pathspec], cwd=repo,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    return dict(cpu=cpu_model(), cores=os.cpu_count(), python=platform.python_version())
