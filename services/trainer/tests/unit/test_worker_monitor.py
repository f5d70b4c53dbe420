"""Overfitting detection, best-step tracking, progress lines and the DeepSpeed configuration."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest

from llmops_trainer.worker import config, engine, progress
from llmops_trainer.worker.monitor import Monitor, RunningMean

pytestmark = pytest.mark.unit


def test_overfitting_needs_val_rising_while_train_falls_for_patience_evals() -> None:
    m = Monitor(patience=2)
    assert m.record(2, 2.0, 1.5) == (True, False)
    assert m.record(4, 1.8, 1.6) == (False, False)  # one rise is not yet `patience`
    assert m.record(6, 1.5, 1.7) == (False, True)  # two rises, train loss fell both times
    assert m.best_step == 2 and m.best_val_loss == 1.5


def test_both_losses_rising_is_not_overfitting() -> None:
    m = Monitor(patience=1)
    m.record(1, 2.0, 1.5)
    assert m.record(2, 2.5, 1.9) == (False, False)


def test_a_dip_resets_the_count() -> None:
    m = Monitor(patience=2)
    for step, (train, val) in enumerate([(3, 2.0), (2.8, 2.1), (2.6, 2.0), (2.4, 2.2)], 1):
        _, flag = m.record(step, train, val)
    assert flag is False


def test_patience_zero_never_flags() -> None:
    m = Monitor(patience=0)
    for step in range(1, 6):
        assert m.record(step, 1.0 / step, float(step))[1] is False


def test_nan_val_loss_is_never_best_and_state_round_trips() -> None:
    m = Monitor(patience=1)
    assert m.record(1, 1.0, math.nan) == (False, False)
    m.record(2, 0.9, 1.2)
    restored = Monitor.from_state(json.loads(json.dumps(m.state())))
    assert restored.best_step == 2 and restored.best_val_loss == 1.2 and len(restored.history) == 2
    assert restored.record(3, 0.8, 1.3) == (False, True)


def test_running_mean_resets_on_take() -> None:
    r = RunningMean()
    r.add(1.0)
    r.add(3.0)
    assert r.take() == 2.0 and math.isnan(r.take())


def test_progress_lines_are_json_and_non_finite_is_null(tmp_path: Path) -> None:
    log = progress.ProgressLog(tmp_path, enabled=True)
    log.write("step", step=1, loss=math.nan, learning_rate=0.1)
    progress.ProgressLog(tmp_path, enabled=False).write("eval", step=1)  # not the owner: nothing
    progress.ProgressLog(tmp_path, enabled=False).write("error", force=True, message="boom")
    events = progress.read(tmp_path)
    assert [e["type"] for e in events] == ["step", "error"]
    assert events[0]["loss"] is None and isinstance(events[0]["ts"], float)


def test_ds_config_is_built_from_the_spec(tmp_path: Path) -> None:
    spec = config.JobSpec(
        job_id="j", base_model_path=tmp_path, train_path=tmp_path, validation_path=tmp_path,
        zero_stage=3, lora=True, lora_r=4, lora_alpha=8, epochs=1, learning_rate=1e-4,
        micro_batch_size=2, gradient_accumulation=3, max_seq_len=64, packing=False,
        response_only_loss=True, eval_interval_steps=1, checkpoint_interval_steps=1,
        early_stopping_patience=0, world_size=2, seed=1, max_steps=0,
    )
    cfg = engine.ds_config(spec, engine.Precision("float32", "test"), total_steps=20)
    assert cfg["optimizer"]["params"]["torch_adam"] is True
    assert cfg["zero_optimization"]["stage"] == 3
    assert cfg["train_batch_size"] == 12 and cfg["gradient_accumulation_steps"] == 3
    assert cfg["bf16"] == {"enabled": False}
    assert "scheduler" not in cfg  # the worker passes its own (engine.lr_scheduler)
    bf16 = engine.ds_config(spec, engine.Precision("bfloat16", "test"), total_steps=20)
    assert bf16["bf16"] == {"enabled": True}


def test_learning_rate_warms_up_then_decays_and_never_wastes_a_step() -> None:
    factors = [engine.lr_factor(i, 20) for i in range(20)]
    assert factors[:3] == [0.5, 1.0, 1.0]  # 2 warm-up steps (10%), step 1 already trains
    assert all(b <= a for a, b in itertools.pairwise(factors[1:]))
    assert factors[-1] == pytest.approx(1 / 18) and factors[-1] > 0
    assert [engine.lr_factor(i, 4) for i in range(4)] == [1.0, 1.0, 2 / 3, 1 / 3]


def test_precision_follows_the_cpu_unless_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "read_cpu_flags", lambda: frozenset({"avx2"}))
    assert engine.choose_precision("auto").dtype == "float32"
    monkeypatch.setattr(engine, "read_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert engine.choose_precision("auto").dtype == "bfloat16"
    monkeypatch.setenv(engine.DTYPE_ENV, "float32")
    assert engine.choose_precision().dtype == "float32"
    with pytest.raises(ValueError, match="must be auto, bfloat16 or float32"):
        engine.choose_precision("int8")
