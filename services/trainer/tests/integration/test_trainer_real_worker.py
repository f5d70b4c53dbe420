"""The service around the real training worker (llmops_trainer.worker, DeepSpeed on CPU): a
tiny LoRA job under ZeRO-2 on the shipped SmolLM2 ends as a registered peft-lora version.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from llmops.registry.v1 import registry_pb2
from llmops.trainer.v1 import trainer_pb2 as pb
from llmops_kit.settings import KafkaSettings, llmops_home
from llmops_kit.testing import eventually
from llmops_trainer.settings import ShippedBase

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


async def test_real_worker_lora_zero2_job_is_registered(trainer_kit: Any, registry: Any,
                                                        tmp_path: Path,
                                                        kafka: KafkaSettings) -> None:
    base = llmops_home() / "models" / "smollm2-135m-instruct"
    assert (base / "config.json").is_file(), f"no converted base model in {base}"
    trainer_kit.write_dataset(tmp_path / "datasets")
    settings = trainer_kit.settings(
        tmp_path, registry.port, kafka, uuid.uuid4().hex[:10], real_worker=True,
        base_models={"smollm2-135m-instruct": ShippedBase(path=base)}, lease_seconds=60)
    t = await trainer_kit.start(settings, kafka)  # the worker's own validate
    try:
        job = await t.stub.SubmitJob(pb.SubmitJobRequest(
            dataset_id=trainer_kit.dataset, lora=True, lora_r=4, lora_alpha=8, zero_stage=2,
            max_steps=2, max_seq_len=64, eval_interval_steps=1, checkpoint_interval_steps=1,
            output_model_name="acme-real"), metadata=trainer_kit.md())
        found: list[pb.Job] = []

        async def finished() -> bool:
            got = await t.stub.GetJob(pb.GetJobRequest(job_id=job.job_id),
                                      metadata=trainer_kit.md())
            found[:] = [got]
            return got.state in (pb.JOB_STATE_SUCCEEDED, pb.JOB_STATE_FAILED)

        await eventually(finished, 800)
        log = (settings.jobs_root / job.job_id / "worker.log")
        assert found[0].state == pb.JOB_STATE_SUCCEEDED, \
            f"{found[0].error}\n{log.read_text()[-3000:] if log.exists() else ''}"
        history = [p async for p in t.stub.WatchJob(pb.WatchJobRequest(job_id=job.job_id),
                                                    metadata=trainer_kit.md())]
        steps = [p for p in history if p.kind == pb.PROGRESS_KIND_STEP]
        assert [p.step for p in steps] == [1, 2]
        assert all(p.loss > 0 and p.tokens_per_s > 0 for p in steps)
        assert any(p.kind == pb.PROGRESS_KIND_EVAL and p.eval_metrics["val_loss"] > 0
                   for p in history)
        version = await registry.stub.GetModelVersion(
            registry_pb2.GetModelVersionRequest(name="acme-real", version=found[0].model_version),
            metadata=trainer_kit.md())
        assert version.format == "peft-lora"
        assert version.lineage.training_job_id == job.job_id
        output = Path(version.artifact_uri.removeprefix("file://"))
        assert (output / "adapter_config.json").is_file()
        assert json.loads(version.metadata["config"])["zero_stage"] == 2
    finally:
        await t.stop()
