"""Text-data pipeline for the decoder (CodeParrot-style causal LM) and BERT (MLM) experiments.

Entry point: `make_text_data(config.data, kind=..., global_batch_size=..., seed=...)`.
Modules: corpus (sources, split), tokenizer (train/cache/load), token_store (cached pre-tokenized
arrays), batches (packing, stateless sampling), masking (MLM), text_data (the assembly).
"""

from simplified_tf.data.batches import check_seq_len
from simplified_tf.data.text_data import DataConfig, TextData, default_data_config, make_text_data

__all__ = ["DataConfig", "TextData", "check_seq_len", "default_data_config", "make_text_data"]
