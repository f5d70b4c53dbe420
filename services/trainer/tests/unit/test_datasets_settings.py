"""Dataset settings from the environment, and per-request options over them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from llmops_datasets import WhitespaceCounter
from llmops_kit.errors import InvalidArgument
from llmops_trainer.datasets.service import DatasetService, Options
from llmops_trainer.datasets.settings import DatasetSettings

pytestmark = pytest.mark.unit


def test_env_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path))
    monkeypatch.delenv("LLMOPS_DATASETS_ROOT", raising=False)
    s = DatasetSettings()
    assert s.root == str(tmp_path / "artifacts" / "datasets")
    assert s.tokenizer_path == tmp_path / "models" / "smollm2-135m-instruct"
    assert (s.max_seq_len, s.validation_fraction, s.near_duplicate_threshold, s.num_perm) == (
        2048, 0.1, 0.85, 128)
    monkeypatch.setenv("LLMOPS_DATASETS_ROOT", "s3://bucket/datasets")
    monkeypatch.setenv("LLMOPS_DATASETS_MAX_SEQ_LEN", "512")
    s = DatasetSettings()
    assert (s.root, s.max_seq_len) == ("s3://bucket/datasets", 512)
    monkeypatch.setenv("LLMOPS_DATASETS_VALIDATION_FRACTION", "1.5")
    with pytest.raises(ValidationError, match="validation_fraction"):
        DatasetSettings()


def test_request_options_override_settings_within_bounds(tmp_path: Path) -> None:
    service = DatasetService(DatasetSettings(root=str(tmp_path), seed=4), None, None,  # type: ignore[arg-type]
                             WhitespaceCounter, None)  # type: ignore[arg-type]
    b = service.build_settings("chat", Options())
    assert (b.kind, b.max_seq_len, b.seed, b.validation_fraction, b.near.threshold) == (
        "chat", 2048, 4, 0.1, 0.85)
    b = service.build_settings("auto", Options(max_seq_len=128, validation_fraction=0.0, seed=0,
                                               near_duplicate_threshold=0.5, skip_invalid=True))
    assert (b.max_seq_len, b.validation_fraction, b.seed, b.near.threshold, b.skip_invalid) == (
        128, 0.0, 0, 0.5, True)
    assert service.build_settings("text", Options(disable_near_dedupe=True)).near.threshold is None
    for bad, reason in ((Options(max_seq_len=100_000), "BAD_MAX_SEQ_LEN"),
                        (Options(validation_fraction=1.0), "BAD_VALIDATION_FRACTION"),
                        (Options(near_duplicate_threshold=0.0), "BAD_THRESHOLD")):
        with pytest.raises(InvalidArgument) as info:
            service.build_settings("chat", bad)
        assert info.value.reason == reason
