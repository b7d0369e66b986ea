"""The shared training loop: mesh and sharding, jitted step, optimisers, checkpoints, metrics."""
