"""Simplified Transformer blocks (He & Hofmann 2024): shaped attention, SAS / SAS-P blocks, decoder
LM and BERT encoder in Flax NNX. Entry points: `model_config`, `build_model`, `count_params`."""

from simplified_tf.model_config import BLOCKS, SIZES, model_config
from simplified_tf.models import build_classifier, build_model

__all__ = ["BLOCKS", "SIZES", "build_classifier", "build_model", "model_config"]
