"""Prepares the text data of a decoder or BERT config ahead of training: tokenizer + token stores.

  python scripts/prepare_data.py --config=configs/bert.py:size=paper --config.data.source=/data/pile
  python scripts/prepare_data.py --config=configs/decoder.py:size=small

Streams the corpus once (plus a bounded sample, `data.tokenizer_train_bytes`, for the tokenizer
when none is cached), writes memory-mapped, checksummed token shards into the cache
(`data.cache_dir`, else $SIMPLIFIED_TF_CACHE, else ~/.cache/simplified_tf) and prints where they
are. Training with the same `config.data` then only maps them. Training runs the same step on
first use, so this script is optional; on a multi-host launch, run it once on a shared cache
directory (or on every host) before training, so that hosts do not all build at once.
Host memory stays bounded by the encode block and the tokenizer sample, not the corpus.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from simplified_tf.data import cache_util, prepare  # noqa: E402
from simplified_tf.data.text_data import DataConfig  # noqa: E402
from trainloop import cli  # noqa: E402
from trainloop.config_util import ConfigError  # noqa: E402

_CONFIG = cli.define_config_flag("config", "A decoder or BERT config (path.py:args).")


def main(argv):
    cli.prologue(argv, verbosity=None)
    config = _CONFIG.value
    if config is None:
        raise ConfigError("--config is required, e.g. --config=configs/decoder.py:size=small.")
    kind = config.model.kind
    cfg = DataConfig.parse(config.data)
    start = time.perf_counter()
    prepared = prepare.prepare(cfg, kind, cache_util.cache_root(cfg.cache_dir))
    print(f"source {prepared.source.where} ({kind}, vocab {prepared.info.vocab_size})")
    for split, store in (("train", prepared.train), ("val", prepared.val)):
        shards = len(getattr(store.tokens, "shards", [store.tokens]))
        print(
            f"{split}: {store.num_documents:,} documents, {store.num_tokens:,} tokens, "
            f"{shards} shard(s) -> {store.path}"
        )
    print(f"ready in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    cli.run(main)
