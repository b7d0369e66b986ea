"""The offline code suite: labels true by construction, balanced, and file-disjoint splits."""

import ast
import shutil

import numpy as np
import pytest

from simplified_tf.data.corpus import stdlib_root
from simplified_tf.downstream import code_suite

PACKAGES = ("json", "http", "urllib", "concurrent", "wsgiref", "email")


@pytest.fixture(scope="module")
def suite_config(tmp_path_factory):
    """The suite over a copy of a few standard-library packages (fast to parse)."""
    root = tmp_path_factory.mktemp("pylib")
    for pkg in PACKAGES:
        shutil.copytree(stdlib_root() / pkg, root / pkg, ignore=shutil.ignore_patterns("test*"))
    return code_suite.default_suite_config(
        source=str(root), train_examples=120, eval_examples=60, topics=4, min_topic_files=1
    )


def _parses(text):
    try:
        ast.parse(text)
        return True
    except SyntaxError:
        return False


def test_acceptability_labels_are_what_the_parser_says_and_balanced(suite_config):
    data = code_suite.load_code_task("acceptability", suite_config)
    for ex in (data.train, data.evals["validation"]):
        assert np.bincount(ex.labels).tolist() == [len(ex) // 2, len(ex) // 2]
        for text, label in zip(ex.text_a, ex.labels, strict=True):
            assert _parses(text) == bool(label), text


def test_no_source_file_is_in_both_splits(suite_config):
    for name in code_suite.CODE_TASKS:
        data = code_suite.load_code_task(name, suite_config)
        files = {
            split: {f for src in ex.sources for f in src}
            for split, ex in (("train", data.train), ("eval", data.evals["validation"]))
        }
        assert files["train"] and files["eval"] and not files["train"] & files["eval"], name
        for split, names in files.items():
            for f in names:
                is_eval = code_suite.is_eval_file(f, suite_config.eval_fraction, suite_config.seed)
                assert is_eval == (split == "eval")


def test_snippets_come_from_their_source_files_and_labels_hold(suite_config, tmp_path):
    root = suite_config.source

    def body_lines(text):
        return [line.strip() for line in text.splitlines() if line.strip()]

    def in_file(snippet, name):
        source = {line.strip() for line in open(f"{root}/{name}", encoding="utf-8")}
        return all(line in source for line in body_lines(snippet))

    pair = code_suite.load_code_task("pair", suite_config)
    ex = pair.train
    assert np.bincount(ex.labels).tolist() == [60, 60]
    for a, b, label, (fa, fb) in zip(ex.text_a, ex.text_b, ex.labels, ex.sources, strict=True):
        assert in_file(a, fa) and in_file(b, fb)
        assert (fa == fb) == bool(label)

    topic = code_suite.load_code_task("topic", suite_config)
    classes = topic.spec.label_names
    assert topic.spec.num_labels == len(classes) == 4 and set(classes) <= set(PACKAGES)
    ex = topic.evals["validation"]
    assert np.bincount(ex.labels).tolist() == [15] * 4
    for text, label, (f,) in zip(ex.text_a, ex.labels, ex.sources, strict=True):
        assert in_file(text, f) and f.split("/")[0] == classes[label]


def test_the_suite_is_deterministic(suite_config):
    a = code_suite.load_code_task("acceptability", suite_config)
    code_suite._pools.cache_clear()
    b = code_suite.load_code_task("acceptability", suite_config)
    assert (
        a.train.text_a == b.train.text_a
        and a.evals["validation"].text_a == b.evals["validation"].text_a
    )


def test_corruptions_fail_to_parse_and_change_visible_tokens():
    rng = np.random.default_rng(0)
    snippet = "if x:\n    y = f(a, b['k'])"
    for _ in range(50):
        bad = code_suite.corrupt(snippet, rng)
        assert bad is not None and not _parses(bad)
        assert bad.split() != snippet.split()
