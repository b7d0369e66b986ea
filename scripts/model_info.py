"""Prints parameter counts per group for a simplified_tf model config (nothing is allocated).

  python scripts/model_info.py --config=configs/decoder.py:block=sas_p,size=paper
  python scripts/model_info.py --config=configs/decoder.py:size=paper --all_blocks
  python scripts/model_info.py --config=configs/bert.py:size=paper --all_blocks

`--memory` instead compiles the train and eval steps from abstract inputs on `--devices` devices
(simulated on a CPU host; real ones on an accelerator host) and prints their per-device memory
and the TPU slices of that many chips whose HBM holds them (`trainloop.memory`):

  python scripts/model_info.py --config=configs/bert.py:size=paper,dtype=bfloat16 --memory
  python scripts/model_info.py --config=configs/bert.py:size=paper,dtype=bfloat16 --memory \
      --config.mesh.fsdp=4 --all_blocks

`--all_blocks` prints every block preset side by side (same size, kind and `--config.model.*`
overrides) with the fraction of block matrices removed relative to pre_ln, per layer >= 1 (paper
Sec. 4 footnote 7: 1/(2 + d_ff/d), i.e. 1/6 at d_ff = 4d) and for the whole model. Totals exclude
the scalar gains (the convention of the paper's "167M" and "146M"), which are listed separately.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _simulate_devices(argv: list[str]) -> None:
    """With --memory on a CPU host, simulate --devices devices (XLA reads this before JAX starts)."""
    if not any(a in ("--memory", "--memory=true", "--memory=True") for a in argv):
        return
    n = next((a.split("=", 1)[1] for a in argv if a.startswith("--devices=")), "8")
    flags_now = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags_now:
        os.environ["XLA_FLAGS"] = f"{flags_now} --xla_force_host_platform_device_count={n}".strip()


_simulate_devices(sys.argv)

from absl import flags  # noqa: E402

from simplified_tf.model_config import BLOCKS, model_config  # noqa: E402
from simplified_tf.params import GROUPS, count_params  # noqa: E402
from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402

_CONFIG = cli.define_config_flag("config", "Experiment config with a .model.")
_ALL = flags.DEFINE_bool("all_blocks", False, "Compare every block preset side by side.")
_MEMORY = flags.DEFINE_bool(
    "memory", False, "Print the compiled per-device train/eval memory instead of parameters."
)
_DEVICES = flags.DEFINE_integer("devices", 8, "Devices for --memory (simulated on CPU).")
flags.mark_flags_as_required(["config"])

ROWS = GROUPS + ("total_excl_gains", "total", "block_matrices_per_layer")


def _overrides(model) -> dict:
    """Keys of `model` that differ from its own block preset (to carry over to other blocks)."""
    base = model_config(model.block, model.size, model.kind)
    return {k: model[k] for k in base if k not in ("block",) and model[k] != base[k]}


def _table(columns: dict[str, dict[str, int]], extra: dict[str, dict[str, str]]) -> str:
    names = list(columns)
    rows = [("", *names)]
    for r in ROWS:
        if any(columns[n][r] for n in names) or r.startswith("total"):
            rows.append((r, *(f"{columns[n][r]:,}" for n in names)))
    for r in next(iter(extra.values()), {}):
        rows.append((r, *(extra[n][r] for n in names)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _memory_rows(config, blocks) -> list[tuple[str, ...]]:
    import jax  # noqa: PLC0415 (after XLA_FLAGS is set)

    from simplified_tf.tasks import abstract_batch, make_model_task  # noqa: PLC0415
    from trainloop.memory import GiB, compiled_memory, fitting_slices  # noqa: PLC0415

    devices = jax.devices()
    if len(devices) < _DEVICES.value:
        raise ConfigError(
            f"--devices={_DEVICES.value} but only {len(devices)} {devices[0].platform} devices "
            "exist; on a CPU host pass --memory before JAX starts, or set XLA_FLAGS="
            f"--xla_force_host_platform_device_count={_DEVICES.value}."
        )
    devices = devices[: _DEVICES.value]
    kind = config.model.kind
    rows = []
    for block in blocks:
        cfg = config.copy_and_resolve_references()
        if block != cfg.model.block:
            overrides = _overrides(cfg.model)
            cfg.model = model_config(block, cfg.model.size, kind, **overrides)
        start = time.perf_counter()
        task = make_model_task(cfg, kind)
        batch = abstract_batch(cfg, kind, int(cfg.batch_size))
        mem = compiled_memory(cfg, task, batch, batch, devices)
        peak = max(mem["train"].peak, mem["eval"].peak)
        fits = fitting_slices(peak, len(devices))
        mesh = f"data={len(devices) // int(cfg.mesh.fsdp)}, fsdp={cfg.mesh.fsdp}"
        rows.append(
            (
                block,
                mesh,
                f"{cfg.batch_size} = {cfg.grad_accum_steps} x {cfg.batch_size // cfg.grad_accum_steps}",
                str(cfg.model.dtype),
                f"{mem['train'].peak / GiB:.2f}",
                f"{mem['eval'].peak / GiB:.2f}",
                ", ".join(name for name, ok in fits.values() if ok) or "none",
                f"{time.perf_counter() - start:.0f}",
            )
        )
    return rows


def _print_memory(config) -> None:
    blocks = BLOCKS if _ALL.value else (config.model.block,)
    header = (
        "block", "mesh", "batch (accum x micro)", "dtype", "train GiB", "eval GiB",
        "fits (per-chip HBM)", "compile s",
    )  # fmt: skip
    rows = _memory_rows(config, blocks)
    print(
        f"kind={config.model.kind} size={config.model.size} seq_len={config.data.seq_len} "
        f"vocab={config.model.vocab_size}, per-device peak on {_DEVICES.value} devices:"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main(argv):
    cli.prologue(argv, verbosity=None)
    if "model" not in _CONFIG.value or _CONFIG.value.model.get("kind") not in ("decoder", "bert"):
        raise ConfigError(
            "--config is not a simplified_tf config (it needs model.kind = decoder or bert), e.g. "
            "configs/decoder.py:block=sas_p,size=paper."
        )
    if _MEMORY.value:
        _print_memory(_CONFIG.value)
        return
    model = _CONFIG.value.model
    print(
        f"kind={model.kind} size={model.size}: L={model.num_layers} d={model.width} "
        f"H={model.num_heads} d_ff={model.d_ff} vocab={model.vocab_size} max_len={model.max_len} "
        f"activation={model.activation} norm={model.norm} pos_emb={model.pos_emb}"
    )
    if not _ALL.value:
        counts = count_params(model)
        print(_table({model.block: counts}, {model.block: {}}))
        return
    overrides = _overrides(model)
    columns, extra = {}, {}
    for block in BLOCKS:
        try:
            columns[block] = count_params(model_config(block, model.size, model.kind, **overrides))
        except ConfigError as e:
            print(f"skipping {block}: {e}")
    ref = columns.get("pre_ln")
    for block, c in columns.items():
        if ref is None:
            extra[block] = {}
            continue
        per_layer = 1 - c["block_matrices_per_layer"] / ref["block_matrices_per_layer"]
        whole = 1 - c["total_excl_gains"] / ref["total_excl_gains"]
        extra[block] = {
            "removed/layer (matrices)": f"{per_layer:.4f}",
            "removed (model params)": f"{whole:.4f}",
            "total (M)": f"{c['total_excl_gains'] / 1e6:.2f}M",
        }
    print(_table(columns, extra))


if __name__ == "__main__":
    cli.run(main, stop_note="(this script writes no files).")
