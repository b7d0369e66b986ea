"""The compiled-memory report: eval in microbatches needs less memory, and the slice verdicts."""

import jax
import numpy as np
from toy import D_IN, make_toy_task, toy_config

from trainloop.memory import GiB, compiled_memory, fitting_slices


def test_eval_microbatches_cut_the_eval_peak():
    task = make_toy_task(batch_size=64, width=8192, dropout=False)  # activations dominate
    batch = {
        "x": jax.ShapeDtypeStruct((64, D_IN), np.float32),
        "y": jax.ShapeDtypeStruct((64,), np.float32),
        "step": jax.ShapeDtypeStruct((64,), np.int32),
    }
    peaks = {}
    for accum in (1, 4):
        config = toy_config(batch_size=64, grad_accum_steps=accum)
        mem = compiled_memory(config, task, batch, batch, jax.devices()[:2])
        assert mem["train"].aliased > 0  # the state is donated
        peaks[accum] = (mem["train"].peak, mem["eval"].peak)
    hidden_bytes = 64 * 8192 * 4 // 2  # the eval activations of the whole batch, per device
    assert peaks[1][1] - peaks[4][1] >= hidden_bytes // 2, peaks
    assert peaks[4][0] < peaks[1][0], peaks  # training accumulates too


def test_fitting_slices():
    fits = fitting_slices(15 * GiB, 8)
    assert fits == {
        "v4": ("v4-16", True),
        "v5e": ("v5litepod-8", False),  # 16 GB = 14.9 GiB per chip
        "v5p": ("v5p-16", True),
    }
    assert not any(ok for _, ok in fitting_slices(100 * GiB, 4).values())
