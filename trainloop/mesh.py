"""Device mesh and shardings: data parallel by default, FSDP over parameters by config."""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from trainloop.config_util import ConfigError

BATCH_AXES = ("data", "fsdp")  # the batch is split over every device


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
    """A ("data", "fsdp") mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    fsdp = int(mesh_config.fsdp)
    data = int(mesh_config.data)
    if fsdp < 1 or n % fsdp:
        raise ConfigError(f"mesh.fsdp={fsdp} must be >= 1 and divide the device count {n}.")
    if data == -1:
        data = n // fsdp
    if data * fsdp != n:
        raise ConfigError(
            f"mesh.data={mesh_config.data} x mesh.fsdp={fsdp} must equal the device count {n} "
            "(use mesh.data=-1 to take all remaining devices)."
        )
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((data, fsdp), ("data", "fsdp"), axis_types=auto, devices=devices)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_divisible(batch_size: int, grad_accum_steps: int, mesh: Mesh) -> None:
    n = math.prod(mesh.shape[a] for a in BATCH_AXES)
    if grad_accum_steps < 1 or batch_size % grad_accum_steps:
        raise ConfigError(
            f"batch_size={batch_size} is not divisible by grad_accum_steps={grad_accum_steps}."
        )
    micro = batch_size // grad_accum_steps
    if micro % n:
        raise ConfigError(
            f"batch_size={batch_size} (microbatch {micro}) is not divisible by the "
            f"{n} data-parallel devices; choose a multiple of {n * grad_accum_steps}."
        )


def param_sharding(shape: tuple[int, ...], mesh: Mesh, min_size: int) -> NamedSharding:
    """FSDP rule: shard the largest dimension divisible by the fsdp axis; small arrays replicate."""
    fsdp = mesh.shape["fsdp"]
    if fsdp == 1 or not shape or np.prod(shape) < min_size:
        return replicated(mesh)
    for dim in sorted(range(len(shape)), key=lambda i: -shape[i]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return NamedSharding(mesh, P(*spec))
    return replicated(mesh)


def tree_shardings(abstract_tree, mesh: Mesh, min_size: int):
    """Shardings for every leaf of an abstract pytree (params or optimizer state) by `param_sharding`."""
    return jax.tree_util.tree_map(
        lambda x: param_sharding(tuple(x.shape), mesh, min_size), abstract_tree
    )


def global_batch(local_batch, mesh: Mesh, global_batch_size: int):
    """Assembles the global batch from each process's numpy share."""
    sharding = batch_sharding(mesh)

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(
            sharding, x, (global_batch_size,) + x.shape[1:]
        )

    return jax.tree_util.tree_map(one, local_batch)


def num_batch_shards(mesh: Mesh) -> int:
    """How many ways the batch is split (the product of the batch axes)."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)
