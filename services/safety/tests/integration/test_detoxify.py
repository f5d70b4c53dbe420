"""Detoxify's real code path, offline, with a tiny checkpoint built here in its format.

The checkpoint is what Detoxify's released .ckpt files contain: {"config": {"arch": {"args":
{model_type, model_name, tokenizer_name, num_classes}}, "dataset": {"args": {"classes"}}},
"state_dict"} for a 2-layer BERT (BertForSequenceClassification, like the 'original' model),
plus a config folder with config.json and a BertTokenizer vocabulary. No weights are
downloaded: only the random tiny model's are used.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops_safety.adapters.detoxify import DetoxifyModel, checkpoint_source
from llmops_safety.adapters.toxicity import load_toxicity_model
from llmops_safety.api.events import BackgroundPublisher
from llmops_safety.bootstrap import build_grpc, build_service
from llmops_safety.domain.engine import SafetyEngine
from llmops_safety.settings import DetoxifySettings, Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
# Detoxify renames three classes when it loads a checkpoint.
RENAMED = ["toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"you are an idiot hello world nice day".split()]
# Classifier biases of the "fixed" checkpoint: its outputs are sigmoid(bias), whatever the text.
BIASES = [2.0, -3.0, -2.0, -1.0, 1.0, -4.0]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    root = tmp_path_factory.mktemp("detoxify")
    config_dir = root / "config"
    config_dir.mkdir()
    (config_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=len(CLASSES))
    config.save_pretrained(config_dir)
    BertTokenizer(str(config_dir / "vocab.txt")).save_pretrained(config_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()

    def save(name: str, model_type: str, state_dict: dict) -> Path:
        path = root / name
        torch.save({"config": {
            "arch": {"args": {"model_type": model_type,
                              "model_name": "BertForSequenceClassification",
                              "tokenizer_name": "BertTokenizer", "num_classes": len(CLASSES)}},
            "dataset": {"args": {"classes": CLASSES}}}, "state_dict": state_dict}, path)
        return path

    fixed = {k: v.clone() for k, v in model.state_dict().items()}
    fixed["classifier.weight"].zero_()
    fixed["classifier.bias"].copy_(torch.tensor(BIASES))
    return {
        "config_dir": config_dir,
        # model_type names the local folder: Detoxify can load it as is.
        "random": save("random.ckpt", str(config_dir), model.state_dict()),
        # model_type names a hub id, as the released checkpoints do.
        "fixed": save("fixed.ckpt", "bert-base-uncased", fixed),
        "model": model,  # type: ignore[dict-item]
    }


def test_detoxify_loads_and_predicts_offline(tiny):
    import torch
    from detoxify import Detoxify
    from transformers import BertTokenizer

    detox = Detoxify(checkpoint=str(tiny["random"]), huggingface_config_path=str(tiny["config_dir"]))
    assert detox.class_names == RENAMED
    got = detox.predict(["you are an idiot", "hello world"])
    tokenizer = BertTokenizer.from_pretrained(str(tiny["config_dir"]))
    with torch.no_grad():
        inputs = tokenizer(["you are an idiot", "hello world"], return_tensors="pt", padding=True)
        expected = torch.sigmoid(tiny["model"](**inputs).logits)
    for i, name in enumerate(RENAMED):
        assert got[name] == pytest.approx(expected[:, i].tolist(), abs=1e-5)


def test_hub_model_type_is_pointed_at_the_config_dir(tiny):
    # Left alone when it already names a folder; patched (in memory) when it names a hub id.
    assert checkpoint_source(tiny["random"], tiny["config_dir"]) == str(tiny["random"])
    patched = checkpoint_source(tiny["fixed"], tiny["config_dir"])
    assert not isinstance(patched, str)
    model = DetoxifyModel.load(tiny["fixed"], tiny["config_dir"])
    (scores,) = model.score(["you are an idiot"])  # a batch of one: Detoxify squeezes it
    assert scores == pytest.approx({n: _sigmoid(b) for n, b in zip(RENAMED, BIASES, strict=True)},
                                   abs=1e-5)
    assert model.detail.startswith("fixed.ckpt (BertForSequenceClassification")


def test_settings_pick_detoxify_when_weights_are_configured(tiny):
    model = load_toxicity_model(DetoxifySettings(checkpoint=tiny["fixed"], config_dir=tiny["config_dir"]))
    assert model.name == "detoxify"
    assert load_toxicity_model(DetoxifySettings()).name == "alt-profanity-check"


@pytest.fixture(scope="module")
async def detoxify_stub(tiny) -> AsyncIterator[safety_pb2_grpc.SafetyServiceStub]:
    class NoBus:
        async def publish(self, event_type, event, key) -> None:
            return None

    settings = Settings(grpc_host="127.0.0.1", grpc_port=0,
                        detoxify={"checkpoint": tiny["fixed"], "config_dir": tiny["config_dir"]})
    model = load_toxicity_model(settings.detoxify)
    publisher = BackgroundPublisher(NoBus())
    server = build_grpc(settings, build_service(settings, SafetyEngine(model), publisher), publisher)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield safety_pb2_grpc.SafetyServiceStub(channel)
    finally:
        await server.stop(0)


async def test_service_reports_and_uses_detoxify(detoxify_stub):
    md = (("x-api-key", "dev-key-acme"),)
    info = await detoxify_stub.GetInfo(safety_pb2.GetInfoRequest(), metadata=md)
    assert info.toxicity_backend == "detoxify" and info.toxicity_backend_detail.startswith("fixed.ckpt")
    text = "hello world. nice day"
    r = await detoxify_stub.CheckText(
        safety_pb2.CheckTextRequest(text=text, direction=safety_pb2.DIRECTION_OUTPUT), metadata=md)
    assert r.toxicity_backend == "detoxify"
    # toxicity = max over the toxic classes = sigmoid(2.0) = 0.881 >= 0.8: blocked.
    assert r.scores["toxicity.model"] == pytest.approx(_sigmoid(2.0), abs=1e-4)
    assert r.scores["toxicity.insult"] == pytest.approx(_sigmoid(1.0), abs=1e-4)
    assert r.verdict == safety_pb2.VERDICT_BLOCK
    assert [(f.rule, text[f.start:f.end]) for f in r.findings] == [
        ("model.detoxify", "hello world."), ("model.detoxify", " nice day")]
