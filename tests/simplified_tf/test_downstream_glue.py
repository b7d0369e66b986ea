"""GLUE readers on tiny TSV fixtures in GLUE's layout: parsing, label maps, bad input."""

import os

import numpy as np
import pytest

from simplified_tf.downstream import glue
from simplified_tf.downstream.encoding import truncate_pair
from trainloop.config_util import ConfigError

MNLI_HEAD = (
    "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
    "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label"
)


def _write(root, folder, name, lines):
    os.makedirs(root / folder, exist_ok=True)
    (root / folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_glue_fixture(root, n: int = 4):
    """CoLA (single, no header), SST-2 (single), MRPC (pair), STS-B (regression), MNLI (3-way,
    both dev splits): `n` examples per file, text of example i names its label."""
    for split in ("train", "dev"):
        _write(
            root,
            "CoLA",
            f"{split}.tsv",
            [f"src{i}\t{i % 2}\t\tcola {split} {i} {'yes' if i % 2 else 'no'}" for i in range(n)],
        )
        _write(
            root,
            "SST-2",
            f"{split}.tsv",
            ["sentence\tlabel"] + [f'sst "quoted {i}\t{i % 2}' for i in range(n)],
        )
        _write(
            root,
            "MRPC",
            f"{split}.tsv",
            ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
            + [f"{i % 2}\t{i}\t{i + 100}\tmrpc a {i}\tmrpc b {i}" for i in range(n)],
        )
        _write(
            root,
            "STS-B",
            f"{split}.tsv",
            [
                "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
            ]
            + [
                f"{i}\tg\tf\t2012\t{i}\ts\ts\tsts a {i}\tsts b {i}\t{i * 1.25:.2f}"
                for i in range(n)
            ],
        )
    labels = ("entailment", "neutral", "contradiction")
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        _write(root, "MNLI", name, [MNLI_HEAD] + [
            f"{i}\t0\t0\tg\t(\t(\t(\t(\tmnli {name} p{i}\tmnli h{i}\t{labels[i % 3]}\t{labels[i % 3]}"
            for i in range(n)])  # fmt: skip
    return root


def test_every_task_shape_parses_with_its_label_map(tmp_path):
    root = write_glue_fixture(tmp_path)
    cola = glue.load_glue_task("cola", str(root))
    assert cola.train.text_a[1] == "cola train 1 yes" and cola.train.text_b is None
    np.testing.assert_array_equal(cola.evals["validation"].labels, [0, 1, 0, 1])
    assert cola.spec.metrics == ("mcc",) and cola.spec.label_names == ("0", "1")

    sst = glue.load_glue_task("sst2", str(root))
    assert sst.train.text_a[0] == 'sst "quoted 0'  # quotes are text, not TSV quoting

    mrpc = glue.load_glue_task("mrpc", str(root))
    assert (mrpc.train.text_a[3], mrpc.train.text_b[3]) == ("mrpc a 3", "mrpc b 3")
    np.testing.assert_array_equal(mrpc.train.labels, [0, 1, 0, 1])
    assert mrpc.spec.score_names == ("MRPC",) and mrpc.spec.metrics == ("f1", "accuracy")

    sts = glue.load_glue_task("stsb", str(root))
    assert sts.spec.regression and sts.train.labels.dtype == np.float32
    np.testing.assert_allclose(sts.evals["validation"].labels, [0.0, 1.25, 2.5, 3.75])

    mnli = glue.load_glue_task("mnli", str(root))
    assert mnli.spec.num_labels == 3 and mnli.spec.score_names == ("MNLI-m", "MNLI-mm")
    assert set(mnli.evals) == {"matched", "mismatched"}
    assert mnli.evals["mismatched"].text_a[2] == "mnli dev_mismatched.tsv p2"
    # HF hub ids: entailment 0, neutral 1, contradiction 2.
    np.testing.assert_array_equal(mnli.train.labels, [0, 1, 2, 0])


def test_hub_records_map_to_the_same_examples():
    task = glue.GLUE_TASKS["mnli"]
    ex = glue.examples_from_records(task, [{"premise": "p", "hypothesis": "h", "label": 2}])
    assert (ex.text_a, ex.text_b, ex.labels.tolist()) == (("p",), ("h",), [2])


@pytest.mark.parametrize(
    "setup, task, message",
    [
        (lambda r: None, "cola", "does not exist"),  # the GLUE directory itself
        (lambda r: os.makedirs(r / "RTE"), "rte", "RTE/train.tsv does not exist"),
        (lambda r: _write(r, "SST-2", "train.tsv", ["text\tlabel", "a\t1"]), "sst2",
         "wrong columns for SST-2: missing ['sentence']"),
        (lambda r: _write(r, "CoLA", "train.tsv", ["index\tsentence", "0\ta"]), "cola",
         "wrong columns for CoLA"),
        (lambda r: _write(r, "SST-2", "train.tsv", ["sentence\tlabel", "a\tpositive"]), "sst2",
         "label 'positive' is not one of 0, 1"),
        (lambda r: _write(r, "STS-B", "train.tsv", ["sentence1\tsentence2\tscore", "a\tb\thigh"]),
         "stsb", "is not a number"),
        (lambda r: None, "glue_task_x", "Valid choices: cola, sst2"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error(tmp_path, setup, task, message):
    root = tmp_path / "glue"
    if task != "cola" or "does not exist" not in message:
        root.mkdir()
    setup(root)
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        glue.load_glue_task(task, str(root))
    assert "\n" not in str(err.value)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written


def test_many_short_rows_are_an_error_a_few_are_skipped(tmp_path):
    good = [f"s{i}\t{i % 2}" for i in range(2000)]
    _write(tmp_path, "SST-2", "train.tsv", ["sentence\tlabel", *good, "truncated row"])
    _write(tmp_path, "SST-2", "dev.tsv", ["sentence\tlabel", "x\t1"])
    assert len(glue.load_glue_task("sst2", str(tmp_path)).train) == 2000
    _write(tmp_path, "SST-2", "train.tsv", ["sentence\tlabel", "a\t1", "b", "c"])
    with pytest.raises(ConfigError, match="2 of 3 rows have fewer than 2"):
        glue.load_glue_task("sst2", str(tmp_path))


def test_longest_first_truncation_matches_one_token_at_a_time():
    def slow(a, b, budget):
        while a + b > budget:
            if a >= b:
                a -= 1
            else:
                b -= 1
        return a, b

    for a in range(0, 14):
        for b in range(0, 14):
            for budget in (0, 3, 8, 13, 30):
                assert truncate_pair(a, b, budget) == slow(a, b, budget), (a, b, budget)
