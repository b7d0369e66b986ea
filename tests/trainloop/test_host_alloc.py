"""The allocator switch the scripts apply before jax starts (the real mallopt is never called here)."""

import pytest

from trainloop import host_alloc


@pytest.mark.parametrize(
    "argv, applied",
    [
        (["train.py", "--config=c.py"], True),
        (["train.py", "--host_malloc=keep"], True),
        (["train.py", "--host_malloc=default", "--workdir=w"], False),
        (["train.py", "--host_malloc", "default"], False),
        (["train.py", "--workdir", "--host_malloc=default"], False),
        (["train.py", "--workdir=--host_malloc", "default"], True),
    ],
)
def test_apply_from_argv_honours_the_opt_out(monkeypatch, argv, applied):
    calls = []
    monkeypatch.setattr(host_alloc, "keep_host_memory", lambda: calls.append(1) or True)
    assert host_alloc.apply_from_argv(argv) is applied
    assert len(calls) == int(applied)
