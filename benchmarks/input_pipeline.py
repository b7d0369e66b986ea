"""Host input pipeline on CPU: the thin numpy path of `simplified_tf.data` against grain.

  .venv/bin/python benchmarks/input_pipeline.py            # embedded default (stdlib corpus)
  .venv/bin/python benchmarks/input_pipeline.py --rounds=7 --steps=200

Both sides do the same work per step on the same memory-mapped token store: pick B rows by a
stateless shuffle of the packed rows, gather their tokens and build the training arrays (decoder:
inputs/targets/weights; BERT: also the 80/10/10 masking). Two ways of consuming them are timed:
- `random access`: the batch of step s on demand, as `Task.host_batch(step, ...)` is called
  (thin: `TextData.host_batch`; grain: `MapDataset[s]` of range -> shuffle -> repeat -> map(row)
  -> batch -> map(batch arrays));
- `prefetch`: a stream of consecutive steps built ahead by background threads (thin: the loop's
  `trainloop.prefetch.Prefetcher`, one thread, 2 ahead; grain: `to_iter_dataset` with
  `ReadOptions(num_threads=2, prefetch_buffer_size=2)`).
The two sides alternate in rounds (order swapped every round) and the median per-step time of each
round is kept; the ratio is grain / thin per round, reported as the median over rounds.
grain is an optional dependency (`pip install grain==0.2.18`); without it the script says so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
sys.path.insert(0, os.path.dirname(_HERE))

import numpy as np  # noqa: E402

from simplified_tf.data import default_data_config, make_text_data, masking  # noqa: E402
from trainloop.prefetch import Prefetcher  # noqa: E402


def _grain_dataset(data, kind: str):
    import grain  # noqa: PLC0415 (optional)

    rows, store, b = data.train_rows, data.train_store, data.global_batch_size

    def gather(row):
        tokens, length = rows.gather(store.tokens, np.asarray([row]), data.info.pad_id)
        return tokens[0], length[0]

    def stack(items):
        return np.stack([t for t, _ in items]), np.asarray([n for _, n in items])

    def to_arrays(step, tokens_and_lengths):
        tokens_NW, lengths_N = tokens_and_lengths
        noise = None
        if kind == "bert":
            noise = masking.mask_noise(data.seed, step, b, data.config.seq_len)
        return data.batch_arrays(tokens_NW, lengths_N, noise)

    ds = grain.MapDataset.range(len(rows)).shuffle(seed=data.seed).repeat()
    return ds.map(gather).batch(b, batch_fn=stack).map_with_index(to_arrays)


def _time_steps(next_batch, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        next_batch()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _thin(data, mode: str, steps: int, first: int) -> float:
    step = iter(range(first, first + steps))
    if mode == "random access":
        return _time_steps(lambda: data.host_batch(next(step)), steps)
    with Prefetcher(data.host_batch, first + steps, depth=2) as prefetcher:
        return _time_steps(lambda: prefetcher.get(next(step)), steps)


def _grain(ds, mode: str, steps: int, first: int) -> float:
    import grain  # noqa: PLC0415

    if mode == "random access":
        step = iter(range(first, first + steps))
        return _time_steps(lambda: ds[next(step)], steps)
    opts = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)
    it = iter(ds.slice(slice(first, first + steps)).to_iter_dataset(opts))
    return _time_steps(lambda: next(it), steps)


def _round(data, ds, mode: str, steps: int, r: int) -> tuple[float, float]:
    """(thin, grain) median step times; the order alternates between rounds."""
    first = r * steps
    if r % 2:
        grain_t = _grain(ds, mode, steps, first)
        return _thin(data, mode, steps, first), grain_t
    thin_t = _thin(data, mode, steps, first)
    return thin_t, _grain(ds, mode, steps, first)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--cache_dir", default="")
    args = p.parse_args()
    try:
        import grain  # noqa: F401, PLC0415
    except ImportError:
        sys.exit("grain is not installed: pip install grain==0.2.18 (optional, for this benchmark)")
    from benchmarks.machine import cpu_model, load_average  # noqa: PLC0415

    print(f"CPU: {cpu_model()}; load before: {load_average()}")
    # The embedded default's batch shapes (configs/decoder.py and bert.py, size=small), then a
    # BERT batch of 1024 rows on the way to the paper's 8192 (one host's share on 8 hosts).
    setups = [("decoder", 8), ("bert", 32), ("bert", 1024)]
    for kind, batch in setups:
        cfg = default_data_config(kind, cache_dir=args.cache_dir)
        data = make_text_data(cfg, kind=kind, global_batch_size=batch, seed=0)
        ds = _grain_dataset(data, kind)
        for mode in ("random access", "prefetch"):
            ratios, thin_ms, grain_ms = [], [], []
            for r in range(args.rounds):
                thin_t, grain_t = _round(data, ds, mode, args.steps, r)
                thin_ms.append(thin_t * 1e3)
                grain_ms.append(grain_t * 1e3)
                ratios.append(grain_t / thin_t)
            print(
                f"{kind:7s} B={batch:<3d} {mode:13s}: thin {statistics.median(thin_ms):7.3f} ms/step, "
                f"grain {statistics.median(grain_ms):7.3f} ms/step, grain/thin "
                f"{statistics.median(ratios):5.2f}x (rounds: {', '.join(f'{x:.2f}' for x in ratios)})"
            )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
