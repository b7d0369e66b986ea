"""Corpus sources, skipping of unusable files, bad-input errors, and the train/validation split."""

import json
import sys

import pytest

from simplified_tf.data import corpus
from trainloop.config_util import ConfigError


def _write_folder(root):
    (root / "pkg").mkdir(parents=True)
    (root / "a.py").write_text("def a():\n    return 1\n")
    (root / "pkg" / "b.txt").write_text("plain text document\n")
    (root / "pkg" / "c.jsonl").write_text(
        json.dumps({"text": "first line doc"}) + "\n{not json}\n" + json.dumps({"text": "second"})
    )
    (root / "bin.py").write_bytes(b"\x00\x01\x02binary")
    (root / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "ignored.md").write_text("not an accepted extension")
    (root / "tests").mkdir()
    (root / "tests" / "t.py").write_text("test folders are skipped")
    return root


def test_stdlib_found_and_nonempty():
    c = corpus.load_corpus("stdlib", max_documents=20)
    assert len(c.documents) == 20
    names = [d.name for d in c.documents]
    assert names == sorted(names)
    assert all(n.endswith(".py") for n in names)
    assert all("site-packages" not in n and "/test/" not in n for n in names)
    assert sum(len(d.text) for d in c.documents) > 10_000
    assert corpus.stdlib_root().is_dir()


def test_stdlib_excludes_tests_and_site_packages():
    c = corpus.load_corpus("stdlib")
    parts = {p for d in c.documents for p in d.name.split("/")[:-1]}
    assert not parts & {"test", "tests", "site-packages", "__pycache__"}
    assert 300 < len(c.documents) < 3000  # about 734 files on CPython 3.11


def test_local_folder_reads_accepted_files_and_skips_bad(tmp_path):
    c = corpus.load_corpus(str(_write_folder(tmp_path)))
    names = [d.name for d in c.documents]
    assert names == ["a.py", "pkg/b.txt", "pkg/c.jsonl:1", "pkg/c.jsonl:3"]
    # binary .py, non-UTF-8 .txt, and one malformed JSON line
    assert c.num_skipped == 3
    assert c.documents[2].text == "first line doc"


def test_single_file_source(tmp_path):
    f = tmp_path / "one.txt"
    f.write_text("hello")
    assert [d.text for d in corpus.load_corpus(str(f)).documents] == ["hello"]


def test_max_documents_caps_in_order(tmp_path):
    full = corpus.load_corpus(str(_write_folder(tmp_path)))
    capped = corpus.load_corpus(str(tmp_path), max_documents=2)
    assert capped.documents == full.documents[:2]


def test_empty_folder_error_names_path_and_extensions(tmp_path):
    with pytest.raises(ConfigError, match=r"no \.py, \.txt, \.jsonl files") as e:
        corpus.load_corpus(str(tmp_path))
    assert str(tmp_path) in str(e.value)


def test_folder_of_only_binary_and_non_utf8_files(tmp_path):
    (tmp_path / "x.py").write_bytes(b"\x00\xff" * 10)
    (tmp_path / "y.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ConfigError, match="2 unreadable, binary or non-UTF-8"):
        corpus.load_corpus(str(tmp_path))


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        corpus.load_corpus(str(tmp_path / "nope"))
    (tmp_path / "f.csv").write_text("a,b")
    with pytest.raises(ConfigError, match=r"\.py, \.txt, \.jsonl"):
        corpus.load_corpus(str(tmp_path / "f.csv"))


def test_jsonl_without_text_field(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"content": "x"}) + "\n")
    with pytest.raises(ConfigError, match=r"no text field 'text'.*content"):
        corpus.load_corpus(str(tmp_path))
    c = corpus.load_corpus(str(tmp_path), text_field="content")
    assert c.documents[0].text == "x"


def test_hf_source_without_datasets_says_how_to_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails even if installed
    with pytest.raises(ConfigError) as e:
        corpus.load_corpus("hf:huggingface-course/codeparrot-ds-train")
    msg = str(e.value)
    assert "pip install -e '.[hf]'" in msg and "network" in msg and "local path" in msg


def test_split_deterministic_disjoint_and_complete():
    docs = tuple(corpus.Document(f"f{i}.py", f"text {i}") for i in range(400))
    train, val = corpus.split_documents(docs, 0.1)
    train2, val2 = corpus.split_documents(docs, 0.1)
    assert [d.name for d in train] == [d.name for d in train2]
    assert [d.name for d in val] == [d.name for d in val2]
    assert not {d.name for d in train} & {d.name for d in val}
    assert len(train) + len(val) == len(docs)
    assert 20 <= len(val) <= 65  # ~40 expected
    # a document's side does not depend on the rest of the corpus
    _, val_sub = corpus.split_documents(docs[:200], 0.1)
    assert {d.name for d in val_sub} == {d.name for d in val if int(d.name[1:-3]) < 200}


def test_split_small_corpus_gets_one_val_doc_and_rejects_bad_fraction():
    docs = tuple(corpus.Document(f"d{i}", "x") for i in range(3))
    train, val = corpus.split_documents(docs, 0.01)
    assert len(val) == 1 and len(train) == 2
    assert corpus.split_documents(docs, 0.0) == (list(docs), [])
    with pytest.raises(ConfigError, match="val_fraction"):
        corpus.split_documents(docs, 1.0)


def test_fingerprint_changes_with_content():
    a = [corpus.Document("x", "1"), corpus.Document("y", "2")]
    b = [corpus.Document("x", "1"), corpus.Document("y", "3")]
    assert corpus.fingerprint_documents(a) != corpus.fingerprint_documents(b)
    assert corpus.fingerprint_documents(a) == corpus.fingerprint_documents(list(a))


def test_hf_source_streams_in_blocks_of_rows(monkeypatch):
    texts = [f"doc {i}" if i % 7 else "" for i in range(2500)]  # every 7th is empty
    reads = []

    class FakeDataset:
        column_names = ["text", "id"]
        _fingerprint = "abc123"

        def __len__(self):
            return len(texts)

        def __getitem__(self, sl):
            reads.append(sl.stop - sl.start)
            return {"text": texts[sl], "id": list(range(sl.start, sl.stop))}

    fake = type(sys)("datasets")
    fake.load_dataset = lambda name, split: FakeDataset()
    monkeypatch.setitem(sys.modules, "datasets", fake)
    source = corpus.open_corpus("hf:some/data", max_documents=2000)
    assert not reads  # opening reads no rows
    docs = list(source.documents())
    assert len(docs) == 2000 and docs[0].name == "hf:some/data:1"
    assert all(d.text for d in docs)
    assert max(reads) <= 1000  # never the whole split as one Python list
    other = corpus.open_corpus("hf:some/data", max_documents=10)
    assert other.fingerprint != source.fingerprint
