"""`make demo`: a ~10-minute tour of both papers' headline claims on embedded data, nothing downloaded.

1. Ahn et al.: Adam vs SGD with momentum on in-context linear regression (Settings 1-3, --quick).
2. He & Hofmann: Pre-LN vs SAS-P decoders on the Python standard library's source (size=small):
   eval loss per step and per second, parameters and tokens/s side by side.
3. A code sample from the trained SAS-P model (KV-cache decoding).

Outputs go under --out (default results/demo); the script ends by listing them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from trainloop import cli  # noqa: E402

_OUT = flags.DEFINE_string("out", "results/demo", "Output directory.")
_DECODER_STEPS = flags.DEFINE_integer("decoder_steps", 150, "Training steps per decoder block.")


def _run(title: str, *args: str) -> None:
    print(f"\n=== {title} ===\n$ python {' '.join(args)}", flush=True)
    start = time.time()
    status = subprocess.run([sys.executable, *args], cwd=ROOT).returncode
    if status:
        cli.fail(
            f"{title}: the command above failed (exit status {status}; its message is above).",
            status,
        )
    print(f"--- {title}: {time.time() - start:.0f} s", flush=True)


def main(argv):
    del argv
    out = _OUT.value
    linear_out = os.path.join(out, "linear_tf")
    decoder_out = os.path.join(out, "decoder_small")
    _run(
        "Linear Transformers: Adam vs SGD with momentum (quick)",
        "scripts/reproduce_linear_tf.py", "--figure=loss_curves", "--quick", f"--out={linear_out}",
    )  # fmt: skip
    _run(
        "Simplified blocks: Pre-LN vs SAS-P decoder on the stdlib corpus",
        "scripts/compare_blocks.py", "--config=configs/decoder.py:size=small",
        "--blocks=pre_ln,sas_p", f"--steps={_DECODER_STEPS.value}", f"--out={decoder_out}",
    )  # fmt: skip
    _run(
        "A sample from the SAS-P model",
        "scripts/sample.py", f"--workdir={os.path.join(decoder_out, 'sas_p')}",
        "--prompt=def fibonacci(n):", "--max_new_tokens=64",
    )  # fmt: skip
    print("\nOutputs:")
    for d in (linear_out, decoder_out):
        for name in sorted(os.listdir(os.path.join(ROOT, d))):
            if name.endswith((".png", ".md", ".json")):
                print(f"  {os.path.join(d, name)}")
    print(f"  per-run metrics: {decoder_out}/<block>/metrics.jsonl")


if __name__ == "__main__":
    cli.run(main, stop_note="(the outputs of finished parts stay in --out; rerun to resume).")
