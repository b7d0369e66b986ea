"""The host-batch prefetcher: builds ahead, returns what `make` returns, and fails at the right step."""

import threading

import pytest

from trainloop.prefetch import Prefetcher


def test_builds_ahead_in_a_worker_thread_and_keeps_order():
    made, threads = [], set()
    release = threading.Event()

    def make(step):
        threads.add(threading.current_thread().name)
        made.append(step)
        if step == 3:
            release.wait(5)
        return {"step": step}

    with Prefetcher(make, num_steps=6, depth=2) as p:
        assert p.get(0) == {"step": 0}
        assert p.get(1) == {"step": 1}
        assert 3 in made or 2 in made  # step 2 or 3 was started before it was asked for
        release.set()
        assert [p.get(s)["step"] for s in range(2, 6)] == [2, 3, 4, 5]
    assert sorted(made) == list(range(6))  # each step built once, none past num_steps
    assert threads == {"host_batch_0"}


def test_error_surfaces_at_its_own_step():
    def make(step):
        if step == 2:
            raise RuntimeError("bad step 2")
        return step

    with Prefetcher(make, num_steps=5, depth=3) as p:
        assert p.get(0) == 0 and p.get(1) == 1
        with pytest.raises(RuntimeError, match="bad step 2"):
            p.get(2)


def test_depth_zero_builds_inline():
    with Prefetcher(lambda s: threading.current_thread().name, num_steps=2, depth=0) as p:
        assert p.get(0) == threading.current_thread().name
