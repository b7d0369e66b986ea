"""Orbax checkpoints of the train state under `WORKDIR/checkpoints`, with a structure check.

Each checkpoint holds the train state (params, optimizer state, step) and a JSON `meta` item with a
structural signature (every leaf's path, shape and dtype). Resuming into a different model or optimizer
structure is refused with an explanation instead of failing deep inside orbax.
"""

from __future__ import annotations

import os

import jax
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
