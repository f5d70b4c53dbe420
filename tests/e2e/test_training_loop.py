"""Continuous training end to end on the real stack: a tenant turns it on (the trainer's
LLMOPS_TRAINER_CONTINUOUS), creates a dataset version, and with no one involved the trainer
runs a real short LoRA job (DeepSpeed on CPU, 2 steps), evaluates the candidate and production
through inference with the version pinned, records both runs in the registry, whose gate lets
the candidate into a canary; a little traffic later the canary promotes it. Every step is seen
on Kafka, in the audit log (AdminService, what `llmops audit` reads) and in observability's
`training.loop_steps` panel (`llmops report`'s "Continuous training" section).

The tenant has no documents: the evaluation set's questions are answered "not covered" by
both versions (the gate still compares the two recorded runs); what the test is about is that
the loop runs each step on the real services, not this model's numbers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer

from e2e_support import CT_TENANT, RUN_ID, Stack
from llmops.admin.v1 import admin_pb2, admin_pb2_grpc
from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops.registry.v1 import registry_pb2, registry_pb2_grpc
from llmops.trainer.v1 import datasets_pb2, datasets_pb2_grpc, pipeline_pb2
from llmops_cli import stack
from llmops_kit import ports, topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import start_group_at_end
from llmops_trainer.datasets import DATASET_CREATED_TOPIC

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m-instruct"
EVAL_NAME = "ct-eval"
GROUP = f"trainer-ct-e2e-{RUN_ID}"
# The steps up to the canary, then the canary's end (promoted after a little traffic).
TO_CANARY = ["triggered", "job_submitted", "job_succeeded", "evaluated", "gate_passed",
             "canary_started"]
POLICY = {
    "enabled": True, "model_name": MODEL, "eval_dataset": EVAL_NAME, "eval_limit": 2,
    "max_new_tokens": 24, "cooldown_seconds": 0,
    "job": {"lora": True, "lora_r": 4, "lora_alpha": 8, "zero_stage": 2, "max_steps": 2,
            "max_seq_len": 64, "world_size": 1, "eval_interval_steps": 1,
            "checkpoint_interval_steps": 100},
    # Half the traffic at once, promoted after two passing 3 s windows of >= 1 answer each;
    # margins wide open: this test is about the loop, not about this model's numbers.
    "canary": {"share": 50, "step": 50, "max_share": 100, "interval_seconds": 3,
               "threshold": 5, "min_requests": 1, "max_latency_ratio": 1000,
               "max_error_rate_increase": 1, "max_safety_block_increase": 1,
               "max_groundedness_drop": 1, "max_negative_feedback_increase": 1},
}
# The registry's gate for this tenant: a 2-step LoRA changes little, and the first answer of a
# new adapter includes loading it, so latency is left out; holds_fact must not drop by more
# than half (the gate still compares both runs on the same evaluation set).
GATE = {"rules": [{"metric": "holds_fact", "min_delta": -0.5}]}


@pytest.fixture(scope="module")
async def loop_stack(answer_stack: Stack, kafka: KafkaSettings,
                     tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    data = tmp_path_factory.mktemp("ct")
    s = answer_stack
    # The registry with this tenant's gate (restarted if it runs with another policy).
    gate = json.loads(s.env.get("LLMOPS_REGISTRY_GATE", "{}") or "{}")
    if gate.get("tenants", {}).get(CT_TENANT) != GATE:
        gate.setdefault("tenants", {})[CT_TENANT] = GATE
        s.env["LLMOPS_REGISTRY_GATE"] = json.dumps(gate)
        stack.stop_service("model-registry")
        s.start("model-registry")
        await s.wait("model-registry")
    jobs_requested = f"e2e.{RUN_ID}.trainer.job-requested"
    await start_group_at_end(kafka, GROUP, [DATASET_CREATED_TOPIC, topics.DRIFT_DETECTED])
    env = {
        **s.env,
        "LLMOPS_TRAINER_DATABASE_URL": f"sqlite:///{data}/trainer.db",
        # Under the generation server's models root: it loads adapters from nowhere else.
        "LLMOPS_TRAINER_JOBS_ROOT": str(Path(s.env["LLMOPS_GENERATION_MODELS_ROOT"]) / "ct"),
        "LLMOPS_DATASETS_ROOT": str(data / "datasets"),
        "LLMOPS_TRAINER_JOB_REQUESTED_TOPIC": jobs_requested,
        "LLMOPS_TRAINER_CONSUMER_GROUP": f"trainer-jobs-e2e-{RUN_ID}",
        "LLMOPS_TRAINER_CONTINUOUS": json.dumps({
            "tenants": {CT_TENANT: POLICY}, "poll_seconds": 1, "consumer_group": GROUP}),
    }
    stack.stop_service("trainer")
    stack.start_service(s.spec("trainer"), 0, env=env)
    s.running.add("trainer:0")
    await s.wait("trainer")
    yield s
    stack.stop_service("trainer")
    s.running.discard("trainer:0")


def _jsonl(path: Path, n: int, keep: str = "") -> bytes:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and keep in ln]
    return ("\n".join(lines[:n]) + "\n").encode()


async def _steps(consumer: AIOKafkaConsumer, found: list[pipeline_pb2.ContinuousTrainingStep],
                 until: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for r in records:
                step = pipeline_pb2.ContinuousTrainingStep.FromString(r.value)
                if step.envelope.tenant_id == CT_TENANT:
                    found.append(step)
        if any(s.step == until or s.final for s in found):
            return
    pytest.fail(f"no {until} within {timeout}s; steps: {[(s.step, s.reason) for s in found]}")


async def test_a_new_dataset_version_ends_in_a_promoted_canary_with_no_one_involved(
        loop_stack: Stack, kafka: KafkaSettings) -> None:
    started = time.monotonic()
    s, md = loop_stack, loop_stack.md(CT_TENANT)
    consumer = AIOKafkaConsumer(topics.CONTINUOUS_TRAINING_STEP, **kafka.client_options(),
                                auto_offset_reset="latest", group_id=None)
    await consumer.start()
    found: list[pipeline_pb2.ContinuousTrainingStep] = []
    trainer = grpc.aio.insecure_channel(ports.service_address("trainer"))
    try:
        await consumer.seek_to_end()
        await consumer.getmany(timeout_ms=200)  # the position is fixed before anything happens
        datasets = datasets_pb2_grpc.DatasetServiceStub(trainer)
        evalset = await datasets.CreateDataset(datasets_pb2.CreateDatasetRequest(
            name=EVAL_NAME, kind=datasets_pb2.DATASET_KIND_EVAL,
            jsonl=_jsonl(REPO / "samples" / "eval" / "questions.jsonl", 2, "vacation-policy")),
            metadata=md, timeout=120)
        train = await datasets.CreateDataset(datasets_pb2.CreateDatasetRequest(
            name="ct-train", kind=datasets_pb2.DATASET_KIND_INSTRUCTION,
            jsonl=_jsonl(REPO / "samples" / "train" / "policies-qa.jsonl", 10)),
            metadata=md, timeout=120)
        await _steps(consumer, found, "canary_started", timeout=420)
        assert [x.step for x in found] == TO_CANARY, [(x.step, x.reason) for x in found]
        last = found[-1]
        assert len({x.loop_id for x in found}) == 1 and last.trigger == "dataset"
        assert (last.trigger_ref, last.dataset_id) == (train.dataset.id, train.dataset.id)
        assert (last.model_name, last.production_version, last.eval_dataset) == \
            (MODEL, 1, evalset.dataset.id)
        assert last.model_version > 1 and last.job_id.startswith("job-ct-")
        assert last.candidate_run_id.startswith("ev-") and last.production_run_id.startswith("ev-")
        assert "holds_fact" in found[3].reason and "gate" in found[4].reason

        # Traffic: the canary sends half of it to the candidate, then all, then promotes.
        # Straight to the model (rag off): the canary's analysis counts the model's answers.
        inference = inference_pb2_grpc.InferenceServiceStub(
            grpc.aio.insecure_channel(ports.service_address("inference")))
        served: set[str] = set()
        deadline = time.monotonic() + 150
        while not any(x.step == "canary_promoted" or x.final for x in found):
            assert time.monotonic() < deadline, [(x.step, x.reason) for x in found]
            resp = await inference.Generate(inference_pb2.GenerateRequest(
                question="How many days of paid vacation do I get?", max_new_tokens=16,
                rag=False, no_cache=True), metadata=md, timeout=120)
            served.add(resp.model_version)
            for records in (await consumer.getmany(timeout_ms=300)).values():
                found.extend(x for x in (pipeline_pb2.ContinuousTrainingStep.FromString(r.value)
                                         for r in records) if x.envelope.tenant_id == CT_TENANT)
        assert found[-1].step == "canary_promoted" and found[-1].final, found[-1].reason
        assert f"{MODEL}@{last.model_version}" in served
        assert [x.sequence for x in found] == list(range(1, len(found) + 1))
    finally:
        await consumer.stop()
        await trainer.close()

    registry = registry_pb2_grpc.ModelRegistryServiceStub(
        grpc.aio.insecure_channel(ports.service_address("model-registry")))
    prod = await registry.GetModelVersion(registry_pb2.GetModelVersionRequest(
        name=MODEL, alias="production"), metadata=md, timeout=10)
    assert prod.version == last.model_version
    assert prod.lineage.training_job_id == last.job_id

    # Every step in the audit log, as `llmops audit --tenant` lists it.
    admin = admin_pb2_grpc.AdminServiceStub(
        grpc.aio.insecure_channel(ports.service_address("model-registry")))
    audit = await admin.ListAuditEntries(admin_pb2.ListAuditEntriesRequest(
        tenant_id=CT_TENANT, limit=200), metadata=(("x-api-key", s.env["LLMOPS_ADMIN_KEY"]),),
        timeout=10)
    actions = [e.action for e in audit.entries if e.target == last.loop_id]
    assert sorted(actions) == sorted(f"continuous_training.{x.step}" for x in found)

    # And in observability (the report's "Continuous training" section).
    obs = observability_pb2_grpc.ObservabilityServiceStub(
        grpc.aio.insecure_channel(ports.service_address("observability")))
    seen: list[str] = []
    for _ in range(60):
        req = observability_pb2.QueryPanelRequest(panel_id="training.loop_steps",
                                                  tenant=CT_TENANT)
        req.since.FromDatetime(datetime.now(UTC) - timedelta(hours=1))
        req.until.FromDatetime(datetime.now(UTC) + timedelta(minutes=1))
        rows = (await obs.QueryPanel(req, metadata=md, timeout=30)).rows
        seen = [r.values[4].string_value for r in rows if r.values[2].string_value ==
                last.loop_id]
        if len(seen) == len(found):
            break
        await asyncio.sleep(1)
    assert sorted(seen) == sorted(x.step for x in found)
    print(f"\ncontinuous training loop end to end: {time.monotonic() - started:.0f}s")
