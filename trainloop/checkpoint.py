"""Orbax checkpoints of the train state under `WORKDIR/checkpoints`, verified on every restore.

Each checkpoint holds the train state (params, optimizer state, step) and a JSON `meta` item with
- a structural signature (every leaf's path, shape and dtype): resuming into a different model or
  optimizer structure is refused with an explanation instead of failing deep inside orbax;
- a checksum of every array (`trainloop.checksums`), computed on device at save time.

Orbax 0.12.8 does not verify array data on restore (its zarr3 layout checksums only the shard
index; flipped bytes in chunk data restore silently), so `Checkpoints.restore` verifies the
restored arrays against the recorded checksums and reports a damaged checkpoint (unreadable files,
a missing item, a checksum mismatch) as a `CheckpointError`. `restore_latest` then falls back to
the newest intact checkpoint with a warning naming both steps; in a writable workdir the damaged
one is moved to `WORKDIR/damaged_checkpoints/` (never deleted) so that the run can save that step
again. A full disk or a permission problem while saving becomes an `OSError` naming the step, the
directory and the newest complete checkpoint; the checkpoints already on disk stay usable.

Code that restores through its own orbax manager (e.g. a partial restore of the params) calls
`verify_restored(manager, step, restored_state)` on what it read. `restore_run_params(workdir)`
reads a run back for another use (fine-tuning, sampling): its config.json and verified params.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging as py_logging
import os
import re
import sys
from collections.abc import Callable

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from trainloop.checksums import tree_checksums, verify_checksums
from trainloop.errors import CheckpointError, ConfigError
from trainloop.optim import path_str
from trainloop.progress import announce

# errnos that describe the machine (disk, permissions), not a damaged checkpoint.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)
DAMAGED_DIR = "damaged_checkpoints"


def structure_signature(abstract_state) -> dict[str, str]:
    leaves = jax.tree_util.tree_leaves_with_path(abstract_state)
    return {path_str(p): f"{tuple(x.shape)}:{x.dtype}" for p, x in leaves}


# ---------------------------------------------------------------------------------------------
# Telling a damaged checkpoint from a problem of the machine.


def _errno_of(exc: BaseException) -> int | None:
    """The errno of an OSError in `exc`'s chain, or one quoted in a tensorstore message."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc.errno
        match = re.search(r"\[(?:OS error |Errno |os_error_code=')(\d+)", str(exc))
        if match:
            return int(match.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException) -> str:
    """'Type: message' in one short line; of a long chain of causes ("A: B: C") the innermost."""
    lines = str(exc).strip().splitlines()
    text = re.sub(r"\s*\[tensorstore_spec.*$", "", lines[0] if lines else "")
    if len(text) > 240:
        text = "..." + text[-240:]
    return f"{type(exc).__name__}: {text}"


class _QuietDiskErrors(py_logging.Filter):
    """Drops orbax's own tracebacks for disk errors that `Checkpoints` reports itself, and its
    warnings that a read-only manager is read-only."""

    # orbax's warnings for every read-only manager (restores for sampling, fine-tuning): expected.
    _READ_ONLY_NOTES = (
        "read_only=True, setting save_interval_steps",
        "Given directory is read only",
    )

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        from_orbax = "orbax" in (record.pathname or "")
        if from_orbax and any(n in str(record.msg) for n in self._READ_ONLY_NOTES):
            return False
        return not (from_orbax and exc is not None and _errno_of(exc) in DISK_ERRNOS)


_quiet_filter = _QuietDiskErrors()


_previous_unraisablehook = sys.unraisablehook


def _ignore_orphaned_callbacks(unraisable) -> None:
    """After orbax gives up on a failed save or restore (reported by `Checkpoints`), tensorstore's
    pending callbacks still try to reach orbax's closed event loop and print tracebacks of
    `RuntimeError: Event loop is closed`; those say nothing new, so they are dropped."""
    exc = unraisable.exc_value
    if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
        return
    _previous_unraisablehook(unraisable)


def _quiet_reported_failures() -> None:
    """Keeps orbax's own tracebacks of failures that `Checkpoints` reports off the console."""
    global _previous_unraisablehook
    logger = logging.get_absl_logger()
    if _quiet_filter not in logger.filters:
        logger.addFilter(_quiet_filter)
    if sys.unraisablehook is not _ignore_orphaned_callbacks:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _ignore_orphaned_callbacks


def complete_steps(directory: str) -> list[int]:
    """Steps whose checkpoint finished saving (orbax renames a step's temporary folder to the bare
    step number when it commits), read from disk; ascending."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit() and os.path.isdir(f"{directory}/{n}"))


class Checkpoints:
    """The checkpoints of one workdir: periodic async saves, verified restores.

    `read_only=True` (sampling, diagnostics) never writes, deletes or moves anything.
    """

    def __init__(self, workdir: str, every: int, keep: int, *, read_only: bool = False):
        self.workdir = workdir
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.read_only = read_only
        _quiet_reported_failures()
        if read_only:
            options = ocp.CheckpointManagerOptions(read_only=True, create=False)
        else:
            options = ocp.CheckpointManagerOptions(
                save_interval_steps=max(1, every) if every else 10**12,
                max_to_keep=max(1, keep),
                create=True,
                enable_async_checkpointing=True,
                # Unfinished saves (a kill or a full disk mid-save) leave temporary folders that
                # are never restored from; removing them frees their space.
                cleanup_tmp_directories=True,
            )
        try:
            self.manager = ocp.CheckpointManager(
                self.directory,
                options=options,
                item_handlers={
                    "state": ocp.StandardCheckpointHandler(),
                    "meta": ocp.JsonCheckpointHandler(),
                },
            )
        except Exception as e:
            self._raise_if_disk_error(e)
            raise
        self._saving: int | None = None  # step of the save that may still be in flight

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    # -- saving --------------------------------------------------------------------------------

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        """Saves asynchronously (if due, or `force`); records the arrays' checksums in `meta`."""
        if not force and not self.manager.should_save(step):
            return False
        meta = dict(meta, checksums=tree_checksums(state))
        try:
            saved = self.manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
                force=force,
            )
        except Exception as e:  # also reports a failure of the previous, async save
            self._raise_if_disk_error(e, self._saving, step)
            raise
        self._saving = step
        return saved

    def wait(self) -> None:
        """Blocks until the last save has finished; raises its error if it failed."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            self._raise_if_disk_error(e, self._saving)
            raise

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.manager.close()

    def _raise_if_disk_error(self, exc: BaseException, *steps: int | None) -> None:
        """Turns a full disk / permission error into an OSError naming the step that failed (the
        first of `steps` that did not complete: orbax reports a failed async save at the next
        save or wait) and the newest complete checkpoint."""
        code = _errno_of(exc)
        if code not in DISK_ERRNOS:
            return
        complete = complete_steps(self.directory)
        failed = next((s for s in steps if s is not None and s not in complete), None)
        doing = f"saving checkpoint step {failed}" if failed is not None else "opening"
        done = [s for s in complete if s != failed]
        latest = (
            f"the newest complete checkpoint is step {done[-1]}, which a rerun resumes from"
            if done
            else "no checkpoint is complete yet (a rerun starts afresh)"
        )
        raise OSError(
            code, f"{os.strerror(code)} while {doing} in {self.directory}; {latest}"
        ) from exc

    # -- restoring -----------------------------------------------------------------------------

    def read_meta(self, step: int) -> dict:
        """The `meta` item of `step`; CheckpointError if it is missing or unreadable."""
        return _read_meta(self.manager, step)

    def restore(self, step: int, abstract_state=None, workdir: str | None = None):
        """(state, meta) of `step`, verified against the checksums recorded at save time.

        `abstract_state`: ShapeDtypeStructs carrying shardings; None restores the saved tree as
        saved onto the first local device. Raises ConfigError for a checkpoint of a different
        model/optimizer structure and CheckpointError (naming the step) for a damaged one.
        """
        del workdir  # kept for callers of the earlier signature
        try:
            self._check_json_files(step)
            meta = self.read_meta(step)
            if abstract_state is not None:
                self._check_structure(step, meta, abstract_state)
            else:
                abstract_state = self._saved_tree(step)
            try:
                restored = self.manager.restore(
                    step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
                )
                state = restored["state"]
            except Exception as e:
                _raise_unless_damage(e, step, self.directory)
                raise CheckpointError(f"its state is unreadable ({_first_line(e)})") from e
            verify_checksums(state, meta, step, self.directory)
        except CheckpointError as e:
            message = f"Checkpoint step {step} in {self.directory} is damaged: {e}."
            raise CheckpointError(message) from e
        return state, meta

    def restore_latest(self, abstract_state=None):
        """(step, state, meta) of the newest intact checkpoint, or None if there is none at all.

        A damaged newer checkpoint is reported with a warning naming it and the step used instead,
        and (unless read-only) moved to WORKDIR/damaged_checkpoints/. If every checkpoint is
        damaged, raises CheckpointError and changes nothing.
        """
        steps = sorted(self.manager.all_steps(), reverse=True)
        damaged: list[tuple[int, str]] = []
        for step in steps:
            try:
                state, meta = self.restore(step, abstract_state)
            except CheckpointError as e:
                damaged.append((step, str(e)))
                continue
            if damaged:
                self._set_aside(damaged, step)
            return step, state, meta
        if not damaged:
            return None
        reasons = " ".join(reason for _, reason in damaged)
        raise CheckpointError(
            f"No intact checkpoint in {self.directory}. {reasons} Nothing was changed. To start the "
            f"run afresh, move {self.directory} away (or pass a new --workdir)."
        )

    def _set_aside(self, damaged: list[tuple[int, str]], used: int) -> None:
        """Warns about the damaged steps; unless read-only, moves them out of orbax's way (so the
        run can save those steps again) into WORKDIR/damaged_checkpoints/."""
        moved = []
        if not self.read_only:
            if jax.process_index() == 0:
                aside = os.path.join(os.path.dirname(self.directory), DAMAGED_DIR)
                os.makedirs(aside, exist_ok=True)
                for step, _ in damaged:
                    target, n = os.path.join(aside, str(step)), 1
                    while os.path.exists(target):
                        target, n = os.path.join(aside, f"{step}.{n}"), n + 1
                    os.rename(os.path.join(self.directory, str(step)), target)
                    moved.append(target)
            if jax.process_count() > 1:
                from jax.experimental import multihost_utils

                multihost_utils.sync_global_devices("trainloop.checkpoint.set_aside")
            self.manager.reload()
        reasons = " ".join(reason for _, reason in damaged)
        where = f" Moved it to {', '.join(moved)} (nothing was deleted)." if moved else ""
        announce(
            f"WARNING: {reasons} Using step {used}, the newest intact checkpoint, instead.{where}"
        )

    # orbax's JSON files that a restore reads (the step's _CHECKPOINT_METADATA is not needed).
    _JSON_FILES = re.compile(r"(^|/)(_METADATA|_sharding|metadata|array_metadatas/[^/]+)$")

    def _check_json_files(self, step: int) -> None:
        """Reads every JSON file of the step before orbax does: orbax fails on a garbled one deep
        inside its async reader (leaving tracebacks of orphaned callbacks on stderr)."""
        root = os.path.join(self.directory, str(step))
        for folder, _, files in os.walk(root):
            for name in files:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root)
                if not self._JSON_FILES.search(relative):
                    continue
                try:
                    with open(path, "rb") as f:
                        json.loads(f.read())
                except ValueError as e:
                    raise CheckpointError(f"{relative} is not valid JSON ({_first_line(e)})") from e

    def _check_structure(self, step: int, meta: dict, abstract_state) -> None:
        expected = structure_signature(abstract_state)
        saved = meta.get("structure", {})
        if saved != expected:
            missing = sorted(set(expected) - set(saved))[:5]
            extra = sorted(set(saved) - set(expected))[:5]
            changed = sorted(k for k in set(saved) & set(expected) if saved[k] != expected[k])[:5]
            raise ConfigError(
                f"The checkpoint at {self.directory} (step {step}) was made with a different model "
                f"or optimizer structure than this config (missing: {missing}, unexpected: {extra}, "
                f"changed shape/dtype: {changed}). Refusing to resume; nothing was modified. To start "
                "fresh, pass a new --workdir (or move this one away)."
            )

    def _saved_tree(self, step: int):
        """Abstract target of the saved state, as saved, on the first local device."""
        try:
            saved = self.manager.item_metadata(step)["state"]
        except Exception as e:
            _raise_unless_damage(e, step, self.directory)
            raise CheckpointError(f"its state metadata is unreadable ({_first_line(e)})") from e
        if saved is None:
            raise CheckpointError("its state metadata is missing")
        saved = getattr(saved, "tree", saved)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree_util.tree_map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved
        )


def _raise_unless_damage(exc: BaseException, step: int, directory: str) -> None:
    """Re-raises errors of the machine (permissions, I/O, memory) instead of calling the checkpoint
    damaged; a missing file (ENOENT) is damage."""
    if isinstance(exc, (MemoryError, KeyboardInterrupt)):
        raise exc
    if "RESOURCE_EXHAUSTED" in str(exc) and _errno_of(exc) is None:
        raise exc  # out of (device) memory
    code = _errno_of(exc)
    if code in DISK_ERRNOS:
        raise OSError(
            code, f"{os.strerror(code)} while reading checkpoint step {step} in {directory}"
        ) from exc


def _read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    try:
        meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:
        _raise_unless_damage(e, step, str(manager.directory))
        raise CheckpointError(f"its meta item is unreadable ({_first_line(e)})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"its meta item is not a JSON object ({type(meta).__name__})")
    return meta


def verify_restored(manager: ocp.CheckpointManager, step: int, state) -> dict:
    """For code that restores through its own orbax manager (items "state" and "meta"), e.g. a
    partial restore of the params: reads the `meta` item of `step` and verifies `state` (all of the
    restored state, or a part such as {"params": ...}) against the recorded checksums.

    Returns meta; raises CheckpointError naming the step if the checkpoint is damaged. (Falling
    back to an older step is the caller's choice; `Checkpoints.restore_latest` does.)"""
    directory = str(manager.directory)
    try:
        meta = _read_meta(manager, step)
        verify_checksums(state, meta, step, directory)
    except CheckpointError as e:
        raise CheckpointError(f"Checkpoint step {step} in {directory} is damaged: {e}.") from e
    return meta


@dataclasses.dataclass(frozen=True)
class RunParams:
    """What `restore_run_params` reads from a workdir."""

    config: ml_collections.ConfigDict  # the run's config.json
    params: dict  # the "params" entry of the train state, as saved (nested dicts of arrays)
    step: int  # the checkpoint's step


def read_run_config(workdir: str) -> ml_collections.ConfigDict:
    """`WORKDIR/config.json` (written by the training loop) as a ConfigDict."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(
            f"No config.json in {workdir!r}: pass the workdir of a run of the training loop "
            "(scripts/train.py --workdir=...), finished or still running."
        )
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not a readable config.json ({e}).") from None


def restore_run_params(
    workdir: str,
    *,
    step: int | None = None,
    check_config: Callable[[ml_collections.ConfigDict], None] | None = None,
) -> RunParams:
    """The config and the params of a checkpoint of `workdir`, on one device: the newest intact
    one, or the one at `step`.

    For another use of a finished (or running) run: fine-tuning, sampling, diagnostics. The tree
    comes from the checkpoint's metadata, so no model or optimizer is needed. The checkpoint is
    verified against its checksums; a damaged newer one is reported and skipped (nothing in the
    workdir is modified). `check_config(config)` runs before any checkpoint is opened and may raise
    a ConfigError to refuse the run (e.g. the wrong model kind).
    """
    config = read_run_config(workdir)
    if check_config is not None:
        check_config(config)
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise ConfigError(f"No checkpoints in {workdir!r} (expected {directory}); train first.")
    ckpts = Checkpoints(workdir, 0, 1, read_only=True)
    try:
        if step is None:
            restored = ckpts.restore_latest()
        elif step not in (steps := ckpts.all_steps()):
            raise ConfigError(f"step={step} has no checkpoint in {directory}; valid: {steps}.")
        else:
            restored = (step, *ckpts.restore(step))
    finally:
        ckpts.close()
    if restored is None:
        raise ConfigError(f"No checkpoints in {directory}; train first.")
    step, state, _ = restored
    if not isinstance(state, dict) or "params" not in state:
        raise ConfigError(
            f"The checkpoint {directory}/{step} has no 'params' entry; it was not written by this "
            "training loop."
        )
    return RunParams(config, state["params"], int(step))
