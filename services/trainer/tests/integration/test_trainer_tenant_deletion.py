"""TenantDeleted on real Kafka, SQLite and files: the trainer cancels the tenant's running
job, then removes its jobs, their folders and its dataset versions (catalogue rows and files);
another tenant's are untouched, and a redelivered event changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest

from llmops.trainer.v1 import trainer_pb2 as pb
from llmops_kit import events
from llmops_kit.kafka import EventBus, ensure_topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import (
    eventually,
    group_caught_up,
    read_topic,
    send_tenant_deleted,
    tenant_deleted_topic,
)
from llmops_trainer.api import tenants as tenant_api
from llmops_trainer.bootstrap import tenant_eraser
from llmops_trainer.datasets import DatasetSettings, build_dataset_service
from llmops_trainer.datasets.service import DatasetService, Options
from llmops_trainer.datasets.sources import SourceDocument

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class WordCounter:
    """Tokens = words (the real tokenizer is not what this test is about)."""

    def count(self, text: str) -> int:
        return len(text.split())

    def windows(self, text: str, max_tokens: int) -> list[str]:
        words = text.split()
        return [" ".join(words[i:i + max_tokens]) for i in range(0, len(words), max_tokens)]


class NoDocuments:
    async def fetch(self, tenant: str, document_ids: Sequence[str]) -> list[SourceDocument]:
        return []


def chat(tenant: str) -> bytes:
    return "\n".join(json.dumps({"messages": [
        {"role": "user", "content": f"{tenant} question number {i} about the handbook?"},
        {"role": "assistant", "content": f"Answer {i} of {tenant}, in a sentence."}]})
        for i in range(8)).encode()


async def test_tenant_deleted_removes_jobs_folders_and_datasets(
        trainer_kit: Any, registry: Any, tmp_path: Path, kafka: KafkaSettings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The stand-in worker takes 0.3 s a step: acme's 200-step job is still running when the
    # event comes (globex's 2-step job is done by then).
    monkeypatch.setenv("STANDIN_STEP_SECONDS", "0.3")
    run = uuid.uuid4().hex[:10]
    settings = trainer_kit.settings(tmp_path, registry.port, kafka, run, cancel_grace_seconds=20)
    t = await trainer_kit.start(settings, kafka, lambda spec: [])  # no real base model here
    topic = tenant_deleted_topic()
    group = f"trainer-tenants-{run}"
    await ensure_topics(kafka, [topic.topic], partitions=1)
    bus = EventBus(kafka, client_id="trainer-tenants-test")
    service: DatasetService = build_dataset_service(
        DatasetSettings(root=settings.datasets_root, cache_dir=tmp_path / "cache",
                        tokenizer_path=tmp_path, redact_pii=False),
        t.trainer.store.engine, documents=NoDocuments(), counter=WordCounter()).service
    tenant_api.register(bus, tenant_eraser(settings, t.trainer, service), group, topic)
    await bus.start()
    try:
        ids = {}
        for tenant in ("acme", "globex"):
            entry, created = await service.create_from_jsonl(
                tenant, f"{tenant}-qa", "chat", chat(tenant), Options(), "test")
            assert created
            ids[tenant] = entry.id
        datasets = Path(settings.datasets_root)
        assert (datasets / "acme" / ids["acme"] / "train.jsonl").is_file()

        other = await t.stub.SubmitJob(pb.SubmitJobRequest(
            dataset_id=ids["globex"], lora=True, max_steps=2, eval_interval_steps=1,
            checkpoint_interval_steps=1, max_seq_len=64), metadata=trainer_kit.md("dev-key-globex"))
        globex_md = trainer_kit.md("dev-key-globex")

        async def globex_done() -> bool:
            job = await t.stub.GetJob(pb.GetJobRequest(job_id=other.job_id), metadata=globex_md)
            return job.state == pb.JOB_STATE_SUCCEEDED

        await eventually(globex_done, 60)
        running = await t.stub.SubmitJob(pb.SubmitJobRequest(
            dataset_id=ids["acme"], lora=True, max_steps=200, eval_interval_steps=50,
            checkpoint_interval_steps=1, max_seq_len=64), metadata=trainer_kit.md())
        queued = await t.stub.SubmitJob(pb.SubmitJobRequest(
            dataset_id=ids["acme"], lora=True, max_steps=2, max_seq_len=64),
            metadata=trainer_kit.md())
        jobs = settings.jobs_root

        async def checkpointed() -> bool:
            return (jobs / running.job_id / "checkpoints" / "step-2").is_dir()

        await eventually(checkpointed, 60)
        assert (await t.stub.GetJob(pb.GetJobRequest(job_id=queued.job_id),
                                    metadata=trainer_kit.md())).state == pb.JOB_STATE_QUEUED

        await send_tenant_deleted(kafka, topic.topic, "acme")

        async def acme_gone() -> bool:
            return await group_caught_up(kafka, group, [topic.topic])

        await eventually(acme_gone, 90)
        # The running job was cancelled first (its last event says by whom), then removed.
        records = await read_topic(kafka, t.progress.topic, 200, timeout=10)
        states = [(e.job_id, e.state, e.message) for e in
                  (events.decode(t.progress, r.value) for r in records)
                  if e.kind == pb.PROGRESS_KIND_STATE and e.job_id != other.job_id]
        assert (running.job_id, pb.JOB_STATE_CANCELLED, "cancelled by tenant-deletion") in states
        assert (queued.job_id, pb.JOB_STATE_CANCELLED, "cancelled by tenant-deletion") in states
        assert t.trainer.store.tenant_jobs("acme") == []
        for job_id in (running.job_id, queued.job_id):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await t.stub.GetJob(pb.GetJobRequest(job_id=job_id), metadata=trainer_kit.md())
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            assert t.trainer.store.history(job_id, 0) == []
        assert not (jobs / running.job_id).exists()
        assert not (datasets / "acme").exists()
        assert service.catalogue.list("acme") == []

        # globex keeps its job, its folder (the registered output) and its dataset.
        kept = t.trainer.store.tenant_jobs("globex")
        assert [(j.job_id, j.state.value) for j in kept] == [(other.job_id, "SUCCEEDED")]
        assert (jobs / other.job_id / "output").is_dir()
        assert [e.id for e in service.catalogue.list("globex")] == [ids["globex"]]
        assert (datasets / "globex" / ids["globex"] / "manifest.json").is_file()

        # Redelivered (or published again): nothing left to delete, nothing else touched.
        # A tenant id no dataset folder could have (a space) is not retried forever either.
        await send_tenant_deleted(kafka, topic.topic, "acme", "not a folder name")
        await eventually(acme_gone, 60)
        assert t.trainer.store.tenant_jobs("acme") == []
        assert [j.job_id for j in t.trainer.store.tenant_jobs("globex")] == [other.job_id]
        assert (datasets / "globex" / ids["globex"] / "manifest.json").is_file()
    finally:
        await bus.stop()
        await t.stop()
