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
    monkeypatch.setattr(host_alloc, "set_xla_cpu_flags", lambda: None)
    assert host_alloc.apply_from_argv(argv) is applied
    assert len(calls) == int(applied)


def test_xla_cpu_flags_are_added_once_and_keep_the_users_value(monkeypatch):
    flag = host_alloc.XLA_CPU_FLAGS[0].split("=")[0]
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    host_alloc.set_xla_cpu_flags()
    host_alloc.set_xla_cpu_flags()
    flags = host_alloc.os.environ["XLA_FLAGS"].split()
    assert flags == ["--xla_force_host_platform_device_count=8", *host_alloc.XLA_CPU_FLAGS]
    monkeypatch.setenv("XLA_FLAGS", f"{flag}=false")
    host_alloc.set_xla_cpu_flags()
    assert host_alloc.os.environ["XLA_FLAGS"] == f"{flag}=false"
