"""Orbax checkpoints of the train state under `WORKDIR/checkpoints`, with a structure check.

Each checkpoint holds the train state (params, optimizer state, step) and a JSON `meta` item with a
structural signature (every leaf's path, shape and dtype). Resuming into a different model or optimizer
structure is refused with an explanation instead of failing deep inside orbax.

`restore_latest_params(workdir)` reads a finished (or running) run back for another use, e.g.
fine-tuning or sampling: its `config.json` and the params of its latest checkpoint, without the
optimizer state and without knowing the model (the tree comes from the checkpoint's metadata).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable

import jax
import ml_collections
import orbax.checkpoint as ocp

from trainloop.config_util import ConfigError
from trainloop.optim import path_str


def structure_signature(abstract_state) -> dict[str, str]:
    leaves = jax.tree_util.tree_leaves_with_path(abstract_state)
    return {path_str(p): f"{tuple(x.shape)}:{x.dtype}" for p, x in leaves}


class Checkpoints:
    def __init__(self, workdir: str, every: int, keep: int):
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=max(1, every) if every else 10**12,
            max_to_keep=max(1, keep),
            create=True,
            enable_async_checkpointing=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
        return self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=force,
        )

    def restore(self, step: int, abstract_state, workdir: str):
        """Restores onto `abstract_state` (ShapeDtypeStructs carrying shardings)."""
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
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
        restored = self.manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
        )
        return restored["state"], meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


@dataclasses.dataclass(frozen=True)
class RunParams:
    """What `restore_latest_params` reads from a workdir."""

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


def restore_latest_params(
    workdir: str,
    *,
    check_config: Callable[[ml_collections.ConfigDict], None] | None = None,
    device: jax.Device | None = None,
) -> RunParams:
    """The config and the params of the latest checkpoint of `workdir`, on one device.

    `check_config(config)` runs before any checkpoint is opened and may raise a ConfigError to
    refuse the run (e.g. the wrong model kind). Only the params are read (the optimizer state is
    skipped), onto `device` (default: the first local device), in the saved tree and dtypes.
    Nothing in the workdir is modified.
    """
    config = read_run_config(workdir)
    if check_config is not None:
        check_config(config)
    directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    if not os.path.isdir(directory):
        raise ConfigError(f"No checkpoints in {workdir!r} (expected {directory}); train first.")
    manager = ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(create=False, read_only=True),
        item_handlers={"state": ocp.PyTreeCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()},
    )
    try:
        step = manager.latest_step()
        if step is None:
            raise ConfigError(f"No checkpoints in {directory}; train first.")
        saved = manager.item_metadata(step)["state"]
        saved = getattr(saved, "tree", saved)
        if not isinstance(saved, dict) or "params" not in saved:
            raise ConfigError(
                f"The checkpoint {directory}/{step} has no 'params' entry; it was not written by "
                "this training loop."
            )
        sharding = jax.sharding.SingleDeviceSharding(device or jax.local_devices()[0])
        target = jax.tree_util.tree_map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), saved["params"]
        )
        restore_args = jax.tree_util.tree_map(
            lambda s: ocp.ArrayRestoreArgs(sharding=sharding, global_shape=s.shape, dtype=s.dtype),
            target,
        )
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    {"params": target}, restore_args={"params": restore_args}, partial_restore=True
                )
            ),
        )
    finally:
        manager.close()
    return RunParams(config, restored["state"]["params"], int(step))
