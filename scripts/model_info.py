"""Prints parameter counts per group for a simplified_tf model config (nothing is allocated).

  python scripts/model_info.py --config=configs/decoder.py:block=sas_p,size=paper
  python scripts/model_info.py --config=configs/decoder.py:size=paper --all_blocks
  python scripts/model_info.py --config=configs/bert.py:size=paper --all_blocks

`--all_blocks` prints every block preset side by side (same size, kind and `--config.model.*`
overrides) with the fraction of block matrices removed relative to pre_ln, per layer >= 1 (spec §5:
1/(2 + d_ff/d), i.e. 1/6 at d_ff = 4d) and for the whole model. Spec §5 totals exclude the scalar
gains, which are listed separately.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from simplified_tf.model_config import BLOCKS, model_config  # noqa: E402
from simplified_tf.params import GROUPS, count_params  # noqa: E402
from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402

_CONFIG = cli.define_config_flag("config", "Experiment config with a .model.")
_ALL = flags.DEFINE_bool("all_blocks", False, "Compare every block preset side by side.")
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if "model" not in _CONFIG.value or _CONFIG.value.model.get("kind") not in ("decoder", "bert"):
        raise ConfigError(
            "--config is not a simplified_tf config (it needs model.kind = decoder or bert), e.g. "
            "configs/decoder.py:block=sas_p,size=paper."
        )
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
