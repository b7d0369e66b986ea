"""Samples text from a trained decoder run (any block) with the KV cache.

  python scripts/sample.py --workdir=runs/lm_sas_p_small --prompt="def fibonacci(n):"
  python scripts/sample.py --workdir=W --prompt="import os" --greedy --max_new_tokens=32

Rebuilds the config from W/config.json, the model and the cached tokenizer, restores the params of
the latest checkpoint in W/checkpoints and prints prompt + continuation. See simplified_tf/sampling.py.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402

from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory of a decoder (LM) training run.")
_PROMPT = flags.DEFINE_string("prompt", "def fibonacci(n):", "Text to continue.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 64, "Tokens to generate at most.")
_TEMPERATURE = flags.DEFINE_float("temperature", 0.8, "Softmax temperature (> 0).")
_TOP_K = flags.DEFINE_integer("top_k", 40, "Keep the k most likely tokens (0 = all).")
_TOP_P = flags.DEFINE_float("top_p", 0.95, "Nucleus sampling mass (1 = off).")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_GREEDY = flags.DEFINE_bool("greedy", False, "Argmax decoding (ignores temperature/top-k/top-p).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    cli.prologue(argv, verbosity=logging.ERROR)  # ERROR: hides orbax read-only notices
    from simplified_tf import sampling

    if _MAX_NEW.value < 1:
        raise ConfigError(f"--max_new_tokens={_MAX_NEW.value} must be >= 1.")
    if not _GREEDY.value and _TEMPERATURE.value <= 0:
        raise ConfigError(f"--temperature={_TEMPERATURE.value} must be > 0 (or use --greedy).")
    if _TOP_K.value < 0 or not 0 < _TOP_P.value <= 1:
        raise ConfigError(
            f"--top_k={_TOP_K.value} must be >= 0 (0 = all) and --top_p={_TOP_P.value} in (0, 1]."
        )
    run = sampling.load_run(_WORKDIR.value)
    text, new = sampling.sample_text(
        run,
        _PROMPT.value,
        max_new_tokens=_MAX_NEW.value,
        temperature=_TEMPERATURE.value,
        top_k=_TOP_K.value,
        top_p=_TOP_P.value,
        greedy=_GREEDY.value,
        seed=_SEED.value,
    )
    block = run.config.model.block
    print(f"# {block} @ step {run.step}, {len(new)} new tokens", file=sys.stderr)
    print(text)


if __name__ == "__main__":
    cli.run(main, stop_note="before sampling finished (this script writes no files).")
