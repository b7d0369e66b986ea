"""Tokenizers (HF `tokenizers`): trained on the train split and cached, or loaded.

`data.tokenizer` selects:
- `""`: train one on the train documents. Decoder: byte-level BPE (every byte is a base token,
  so no text is ever unknown) with one special token `<|endoftext|>` (EOS, also the pad, as in
  CodeParrot). BERT: cased WordPiece with [PAD] [UNK] [CLS] [SEP] [MASK] (cased because the
  default corpus is code). The result is cached under
  `<cache>/tokenizers/<kind>-v<vocab>-r<recipe>-<train fingerprint>.json`, published atomically
  and never overwriting an existing file, so a cache hit is the exact same tokenizer.
  Byte-level BPE training is deterministic. WordPiece training is not quite: the trainer
  breaks ties between equally frequent merges in hash-map order, so two trainings can differ in
  a few rare pieces (ids are renumbered canonically, see `_canonicalize_wordpiece`). Processes
  sharing a cache directory always agree (the first published file wins and the others load
  it); hosts with separate caches should share one tokenizer.json via `data.tokenizer`.
- a path to a `tokenizer.json`.
- `"hf:<name>"`: `Tokenizer.from_pretrained(name)` (needs network or a warm HF cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import time
from collections.abc import Iterable, Sized

from absl import logging
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from simplified_tf.data import cache_util
from trainloop.config_util import ConfigError, check_choice

KINDS = ("decoder", "bert")
EOS = "<|endoftext|>"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Bump when the training recipe changes so old cache entries are not mistaken for new ones.
RECIPE_VERSION = 2
# Minimum vocabulary for training: byte-level BPE needs all 256 bytes plus its special token.
_MIN_VOCAB = {"decoder": 256 + 1, "bert": 64 + len(BERT_SPECIALS)}

# Accepted spellings of the special tokens in loaded tokenizers, in order of preference.
_SPECIAL_CANDIDATES = {
    "eos": (EOS, "</s>", "<eos>", "<|end_of_text|>", "[SEP]"),
    "pad": ("[PAD]", "<pad>"),
    "cls": ("[CLS]", "<s>"),
    "sep": ("[SEP]", "</s>"),
    "mask": ("[MASK]", "<mask>"),
}


@dataclasses.dataclass(frozen=True)
class TokenizerInfo:
    """A tokenizer with the special ids the pipeline needs.

    `eos_id` ends each document in the token store (EOS for the decoder, [SEP] for BERT).
    `pad_id` fills padded positions (EOS for the decoder: pad = EOS as in the reference).
    """

    tokenizer: Tokenizer
    kind: str
    fingerprint: str
    eos_id: int
    pad_id: int
    special_ids: tuple[int, ...]  # never masked in MLM
    cls_id: int = -1
    sep_id: int = -1
    mask_id: int = -1

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()


def tokenizer_fingerprint(tok: Tokenizer) -> str:
    return hashlib.sha256(tok.to_str().encode("utf-8")).hexdigest()


def _find_special(tok: Tokenizer, role: str, source: str) -> int:
    for token in _SPECIAL_CANDIDATES[role]:
        idx = tok.token_to_id(token)
        if idx is not None:
            return idx
    raise ConfigError(
        f"Tokenizer {source!r} has no {role} token (looked for {_SPECIAL_CANDIDATES[role]})."
    )


def describe(tok: Tokenizer, kind: str, source: str) -> TokenizerInfo:
    """Wraps a tokenizer with the special ids for `kind`, checking that they exist."""
    special = sorted(i for i, t in tok.get_added_tokens_decoder().items() if t.special)
    fp = tokenizer_fingerprint(tok)
    if kind == "decoder":
        eos = _find_special(tok, "eos", source)
        return TokenizerInfo(tok, kind, fp, eos_id=eos, pad_id=eos, special_ids=tuple(special))
    ids = {role: _find_special(tok, role, source) for role in ("pad", "cls", "sep", "mask")}
    special = sorted(set(special) | set(ids.values()))
    return TokenizerInfo(
        tok,
        kind,
        fp,
        eos_id=ids["sep"],
        pad_id=ids["pad"],
        special_ids=tuple(special),
        cls_id=ids["cls"],
        sep_id=ids["sep"],
        mask_id=ids["mask"],
    )


def _new_tokenizer(kind: str, vocab_size: int) -> tuple[Tokenizer, trainers.Trainer]:
    if kind == "decoder":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        return tok, trainer
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=list(BERT_SPECIALS), show_progress=False
    )
    return tok, trainer


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int) -> Tokenizer:
    """Trains a fresh tokenizer of `kind` with at most `vocab_size` entries on `texts`.

    `texts` may be any iterable (e.g. a stream over a bounded sample of a large corpus); the
    trainer keeps word counts, not the texts.
    """
    check_choice("tokenizer kind", kind, KINDS)
    if vocab_size < _MIN_VOCAB[kind]:
        raise ConfigError(
            f"data.vocab_size={vocab_size} is too small for a trained {kind} tokenizer: it needs "
            f">= {_MIN_VOCAB[kind]} ("
            + ("256 bytes + EOS" if kind == "decoder" else "a base alphabet + 5 specials")
            + ")."
        )
    tok, trainer = _new_tokenizer(kind, vocab_size)
    length = len(texts) if isinstance(texts, Sized) else None
    tok.train_from_iterator(texts, trainer, length=length)
    if tok.get_vocab_size() > vocab_size:  # WordPiece keeps the whole alphabet regardless
        raise ConfigError(
            f"data.vocab_size={vocab_size} is too small: this corpus's alphabet alone gives "
            f"{tok.get_vocab_size()} tokens. Use data.vocab_size >= {tok.get_vocab_size()}."
        )
    if kind == "bert":
        _canonicalize_wordpiece(tok)
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
    return tok


def _canonicalize_wordpiece(tok: Tokenizer) -> None:
    """Renumbers a trained WordPiece vocabulary: specials first, then the rest sorted.

    The WordPiece trainer numbers sub-word pieces in hash-map order, so two trainings on the same
    text give the same pieces under different ids. WordPiece encoding depends only on the set of
    pieces, so a canonical numbering makes independently trained copies (e.g. processes with
    separate caches) interchangeable.
    """
    vocab = tok.get_vocab()
    if [vocab.get(t) for t in BERT_SPECIALS] != list(range(len(BERT_SPECIALS))):
        raise AssertionError(f"Unexpected special-token ids after training: {vocab}")
    rest = sorted(t for t in vocab if t not in BERT_SPECIALS)
    ordered = {t: i for i, t in enumerate(list(BERT_SPECIALS) + rest)}
    tok.model = models.WordPiece(ordered, unk_token="[UNK]", continuing_subword_prefix="##")


def cached_tokenizer_path(root: pathlib.Path, kind: str, vocab_size: int, train_fp: str):
    return root / "tokenizers" / f"{kind}-v{vocab_size}-r{RECIPE_VERSION}-{train_fp[:20]}.json"


def _load_file(path: pathlib.Path) -> Tokenizer | None:
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exceptions for bad JSON
        logging.warning("Cached tokenizer %s is unreadable (%s); ignoring it.", path, e)
        return None


def get_tokenizer(
    spec: str,
    *,
    kind: str,
    vocab_size: int,
    train_texts: Iterable[str],
    train_fingerprint: str,
    cache_dir: pathlib.Path,
) -> TokenizerInfo:
    """Returns the tokenizer selected by `spec` (see module docstring), checked against vocab_size."""
    check_choice("tokenizer kind", kind, KINDS)
    if spec == "":
        tok = _cached_or_trained(kind, vocab_size, train_texts, train_fingerprint, cache_dir)
        source = "trained"
    elif spec.startswith("hf:"):
        try:
            tok = Tokenizer.from_pretrained(spec[3:])
        except Exception as e:
            raise ConfigError(
                f"data.tokenizer={spec!r} could not be fetched ({type(e).__name__}: {e}). It needs "
                "network access or a warm HF cache; offline, pass a local tokenizer.json or '' to "
                "train one on the corpus."
            ) from e
        source = spec
    else:
        path = pathlib.Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"data.tokenizer={spec!r}: no such file. Use '' (train on the corpus), a path to a "
                "tokenizer.json, or 'hf:<name>'."
            )
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise ConfigError(f"data.tokenizer={spec!r} is not a valid tokenizer.json: {e}") from e
        source = str(path)
    if tok.get_vocab_size() > vocab_size:
        raise ConfigError(
            f"Tokenizer {source!r} has {tok.get_vocab_size()} tokens but data.vocab_size="
            f"{vocab_size}; the model's embedding would not cover it. Set data.vocab_size >= "
            f"{tok.get_vocab_size()}."
        )
    return describe(tok, kind, source)


def _cached_or_trained(kind, vocab_size, texts, train_fp, cache_dir) -> Tokenizer:
    path = cached_tokenizer_path(cache_dir, kind, vocab_size, train_fp)
    if path.exists():
        tok = _load_file(path)
        if tok is not None:
            logging.info("Tokenizer cache hit: %s", path)
            return tok
    start = time.perf_counter()
    tok = train_tokenizer(texts, kind, vocab_size)
    logging.info(
        "Trained %s tokenizer (vocab %d) in %.2f s.",
        kind,
        tok.get_vocab_size(),
        time.perf_counter() - start,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():  # an unreadable file sits there: keep it, publish next to it
        path = path.with_name(f"{path.stem}-{tokenizer_fingerprint(tok)[:12]}.json")
    tmp = cache_util.temp_sibling(path)
    tok.save(str(tmp))
    if cache_util.publish_file(tmp, path):
        logging.info("Saved tokenizer to %s", path)
    else:  # another process published the same key first: use theirs for consistency
        tok = _load_file(path) or tok
    return tok
