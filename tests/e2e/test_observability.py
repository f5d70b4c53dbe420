"""Observability end to end: documents ingested and questions asked through the running stack;
the observability service records them, and once it is stopped its chDB store is read (from a
child process: chDB lets one process hold a store's folder at a time).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from e2e_support import OBS_TENANT, Stack, Stubs, wait_indexed
from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops.ingestion.v1 import ingestion_pb2
from llmops.observability.v1 import observability_pb2, observability_pb2_grpc
from llmops_cli import stack
from llmops_cli.client import collect, document_for
from llmops_inference.domain.groundedness import split_sentences
from llmops_kit import ports, topics
from llmops_kit.settings import KafkaSettings
from llmops_kit.testing import error_reason, eventually, group_caught_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
CORPUS = Path(__file__).resolve().parents[2] / "samples" / "corpus"
DOCUMENTS = ("vacation-policy.md", "security-handbook.md")
PII_EMAIL = "jane.roe@example.com"
QUESTIONS = (
    "How many days of paid vacation does a full-time employee get per year?",
    f"My e-mail is {PII_EMAIL}. My laptop was stolen, who do I tell?",
)
# Runs in a child process against the stopped service's store; prints JSON.
READER = r"""
import json, sys
from llmops_observability.clickhouse import connect
client = connect(sys.argv[1], sys.argv[2])
tenant = sys.argv[3]
def rows(sql):
    return [list(r) for r in client.query(sql, parameters={"t": tenant}).result_rows]
tables = [r[0] for r in client.query(
    "SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows]
out = {
    "answers": rows("SELECT id, response_model, prompt_version, duration_ms, "
                    "arraySum(mapValues(stage_ms)), mapKeys(stage_ms), question, "
                    "input_tokens, output_tokens, length(retrieved_chunk_ids) "
                    "FROM answers FINAL WHERE tenant = {t:String} ORDER BY ts"),
    "documents": rows("SELECT event, count(), sum(chunks) FROM document_events FINAL "
                      "WHERE tenant = {t:String} GROUP BY event ORDER BY event"),
    "freshness_ms": rows("SELECT document_id, dateDiff('millisecond', "
                         "minIf(ts, event IN ('submitted', 'chunks_created')), "
                         "maxIf(ts, event = 'chunks_indexed')) "
                         "FROM document_events FINAL WHERE tenant = {t:String} "
                         "GROUP BY document_id ORDER BY document_id"),
    "events": rows("SELECT topic, count() FROM events FINAL WHERE tenant = {t:String} "
                   "GROUP BY topic ORDER BY topic"),
    "verdicts": rows("SELECT direction, count() FROM safety_verdicts FINAL "
                     "WHERE tenant = {t:String} GROUP BY direction ORDER BY direction"),
    "scores": rows("SELECT source, name, count() FROM scores FINAL WHERE tenant = {t:String} "
                   "GROUP BY source, name ORDER BY source, name"),
    "feedback": rows("SELECT s.request_id, s.value, s.comment, a.response_model "
                     "FROM (SELECT tenant, request_id, value, comment FROM scores FINAL "
                     "      WHERE tenant = {t:String} AND source = 'feedback') AS s "
                     "LEFT JOIN (SELECT tenant, id, response_model FROM answers FINAL "
                     "      WHERE tenant = {t:String}) AS a "
                     "ON a.tenant = s.tenant AND a.id = s.request_id ORDER BY s.value"),
    "groundedness": rows("SELECT request_id, value FROM scores FINAL WHERE tenant = {t:String} "
                         "AND source = 'groundedness' ORDER BY request_id"),
    "dump": {t: client.query(f"SELECT * FROM {t}").result_rows
             for t in tables},
}
print(json.dumps(out, default=str))
"""


def read_store(stack_env: dict[str, str], tenant: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", READER, stack_env["LLMOPS_OBSERVABILITY_CLICKHOUSE__DSN"],
         "llmops", tenant], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


async def snapshot(stack_: Stack, kafka: KafkaSettings, tenant: str) -> dict[str, Any]:
    """The store's rows of `tenant`, once the service has committed everything so far: the
    service is stopped gracefully, its store read from a child process, and it is restarted."""
    group = stack_.env["LLMOPS_OBSERVABILITY_CONSUMER_GROUP"]
    await eventually(lambda: group_caught_up(kafka, group, list(topics.ALL)), timeout=180)
    _stop(stack_)
    try:
        return await asyncio.to_thread(read_store, stack_.env, tenant)
    finally:
        stack_.start("observability")
        await stack_.wait("observability")


def assert_no_pii(got: dict[str, Any]) -> None:
    dump = json.dumps(got["dump"])
    assert PII_EMAIL not in dump and "jane.roe" not in dump


@pytest.fixture(scope="module")
async def documents(e2e_stack: Stack, stubs: Stubs) -> tuple[list[str], int]:
    """Two sample documents ingested for the tenant, indexed: (ids, chunks)."""
    md = e2e_stack.md(OBS_TENANT)
    docs = [document_for(p, d) for p, d in collect([str(CORPUS)])
            if Path(p).name in DOCUMENTS]
    # PII in the content, the title and the source: none of it may reach the store.
    docs.append(ingestion_pb2.Document(
        document_id="obs-contacts.md", title=f"Contacts of {PII_EMAIL}",
        source=f"inbox/{PII_EMAIL}/contacts.md",
        content=f"# Contacts\n\nWrite to {PII_EMAIL} about laptops.\n".encode(),
        content_type=ingestion_pb2.CONTENT_TYPE_MARKDOWN))
    resp = await stubs.ingestion.SubmitDocuments(
        ingestion_pb2.SubmitDocumentsRequest(documents=docs), metadata=md, timeout=60)
    ids = [r.document_id for r in resp.results]
    await wait_indexed(stubs, md, ids, timeout=300)
    return ids, sum(r.chunk_count for r in resp.results)


async def test_documents_are_recorded_from_submission_to_searchable(
        e2e_stack: Stack, kafka: KafkaSettings, documents: tuple[list[str], int]) -> None:
    ids, chunks = documents
    got = await snapshot(e2e_stack, kafka, OBS_TENANT)
    # Every chunk created, embedded and indexed; a freshness (accepted -> searchable) for each
    # document. (SubmitDocuments over gRPC publishes no DocumentSubmitted: ingestion's first
    # event of a document is its ChunksCreated.)
    by_event = {e: (n, c) for e, n, c in got["documents"]}
    assert len(ids) == len(DOCUMENTS) + 1
    for stage in ("chunks_created", "chunks_embedded", "chunks_indexed"):
        assert by_event[stage][1] == chunks, stage
    assert sorted(d for d, _ in got["freshness_ms"]) == sorted(ids)
    assert all(0 < ms < 600_000 for _, ms in got["freshness_ms"])
    assert {topics.CHUNKS_CREATED, topics.CHUNK_VECTORS, topics.CHUNKS_INDEXED} <= \
        {t for t, _ in got["events"]}
    assert_no_pii(got)


async def test_answers_are_recorded_with_versions_stages_and_redacted(
        answer_stack: Stack, kafka: KafkaSettings, documents: tuple[list[str], int],
        inference: inference_pb2_grpc.InferenceServiceStub) -> None:
    md = answer_stack.md(OBS_TENANT)
    answers = [await inference.Generate(
        inference_pb2.GenerateRequest(question=q, max_new_tokens=32), metadata=md, timeout=180)
        for q in QUESTIONS]
    # A rating of each answer, one with PII in its comment.
    for answer, rating, comment in ((answers[0], 1, "Spot on."),
                                    (answers[1], -1, f"Wrong, mail me at {PII_EMAIL}")):
        await inference.SubmitFeedback(inference_pb2.SubmitFeedbackRequest(
            request_id=answer.request_id, rating=rating, comment=comment), metadata=md,
            timeout=30)
    got = await snapshot(answer_stack, kafka, OBS_TENANT)

    # One row per answer, with the versions the caller saw and stage latencies that add up to
    # about the total.
    rows = got["answers"]
    assert len(rows) == len(QUESTIONS)
    for row, answer in zip(rows, answers, strict=True):
        _id, model, prompt, total, stage_sum, stages, _q, tokens_in, tokens_out, retrieved = row
        assert (model, prompt) == (answer.model_version, answer.prompt_version)
        assert {"retrieval", "generation"} <= set(stages)
        assert total * 0.8 <= stage_sum <= total * 1.01 + 1, (stage_sum, total)
        assert (tokens_in, tokens_out) == (answer.prompt_tokens, answer.completion_tokens)
        assert retrieved > 0
    # The PII question is stored redacted, and the e-mail is in no row of any table.
    assert "[EMAIL]" in rows[1][6] and PII_EMAIL not in rows[1][6]
    assert_no_pii(got)
    assert {"input", "output"} <= {d for d, _ in got["verdicts"]}
    assert ["retrieval", "best_retrieval_score", len(QUESTIONS)] in got["scores"]
    assert topics.INFERENCE_COMPLETED in {t for t, _ in got["events"]}
    assert topics.FEEDBACK_SUBMITTED in {t for t, _ in got["events"]}
    # Feedback joined to the answers it rates, its comment redacted.
    assert got["feedback"] == [
        [answers[1].request_id, -1.0, "Wrong, mail me at [EMAIL]", answers[1].model_version],
        [answers[0].request_id, 1.0, "Spot on.", answers[0].model_version]]
    # Every answer with a sentence scored for groundedness (an answer like "1" has none), a
    # share in [0, 1].
    sentenced = [a.request_id for a in answers if split_sentences(a.answer) and not a.blocked]
    assert sentenced, [a.answer for a in answers]
    assert sorted(r for r, _ in got["groundedness"]) == sorted(sentenced), [
        (a.answer, a.blocked) for a in answers]
    assert all(0.0 <= v <= 1.0 for _, v in got["groundedness"])

    # The same store read live through the service's panel API (what `llmops report` uses).
    async with grpc.aio.insecure_channel(ports.service_address("observability")) as ch:
        stub = observability_pb2_grpc.ObservabilityServiceStub(ch)
        reply = await stub.QueryPanel(observability_pb2.QueryPanelRequest(
            panel_id="feedback.by_model"), metadata=md, timeout=30)
    shares = {row.values[0].string_value: row.values[1].number_value for row in reply.rows}
    assert shares == {answers[0].model_version: 0.5}


def _stop(stack_: Stack) -> None:
    """A graceful stop (SIGTERM: consumers commit, the store is closed)."""
    stack.stop_service("observability")
    stack_.running.discard("observability:0")


async def test_an_unknown_panel_is_not_found(e2e_stack: Stack) -> None:
    async with grpc.aio.insecure_channel(ports.service_address("observability")) as ch:
        stub = observability_pb2_grpc.ObservabilityServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.QueryPanel(observability_pb2.QueryPanelRequest(panel_id="no.such"),
                                  metadata=e2e_stack.md(OBS_TENANT), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(info.value) == "UNKNOWN_PANEL"
