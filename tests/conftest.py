"""Test setup: 8 fake CPU devices so multi-device code runs on any machine.

XLA reads the flag when the backend starts, so it is set before anything imports jax.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
