"""`llmops feedback` and the request id `llmops ask` prints, against a fake inference service."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit

REQUEST_ID = "0b5e8a52-4a4e-4c1e-9a43-3f4f7f0c2d11"


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.feedback: list[tuple[inference_pb2.SubmitFeedbackRequest, dict[str, str]]] = []

    def Generate(self, request: Any, context: Any) -> inference_pb2.GenerateResponse:
        return inference_pb2.GenerateResponse(answer="25 days [1].", request_id=REQUEST_ID,
                                              model_version="m@1", prompt_version="p@1")

    def SubmitFeedback(self, request: Any, context: Any) -> inference_pb2.SubmitFeedbackResponse:
        if request.rating not in (1, -1):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "BAD_RATING: rating must be 1 or -1")
        self.feedback.append((request, dict(context.invocation_metadata())))
        return inference_pb2.SubmitFeedbackResponse(
            feedback_id="fb-1", comment_redacted="@" in request.comment)


@pytest.fixture
def inference(monkeypatch: pytest.MonkeyPatch) -> Any:
    fake = FakeInference()
    with fake_service(inference_pb2_grpc.add_InferenceServiceServicer_to_server, fake,
                      "LLMOPS_INFERENCE_ADDR", monkeypatch):
        yield fake


def test_feedback_sends_the_rating_and_comment_as_the_tenant(
    inference: FakeInference, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["feedback", REQUEST_ID, "--rating", "down", "--comment", "mail me at a@b.org",
                "--tenant", "acme"]) == 0
    [(request, md)] = inference.feedback
    assert (request.request_id, request.rating, request.comment) == (
        REQUEST_ID, -1, "mail me at a@b.org")
    assert md["x-api-key"] == "k-acme"
    assert capsys.readouterr().out.strip() == (
        "feedback fb-1 recorded (down); personal data in the comment was redacted before it "
        "was kept")
    assert run(["feedback", REQUEST_ID, "--rating", "up", "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"feedback_id": "fb-1",
                                                   "comment_redacted": False}
    assert inference.feedback[-1][0].rating == 1 and inference.feedback[-1][0].comment == ""


def test_a_rating_other_than_up_or_down_is_refused_by_the_cli(
    inference: FakeInference, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["feedback", REQUEST_ID, "--rating", "meh", "--tenant", "acme"]) == 2
    assert inference.feedback == []
    assert "invalid choice" in capsys.readouterr().err


def test_ask_prints_the_request_id_to_rate(inference: FakeInference,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ask", "How many days?", "--tenant", "acme"]) == 0
    out = capsys.readouterr().out
    assert f"request {REQUEST_ID} (rate it: llmops feedback {REQUEST_ID} --rating up|down)" in out
    assert run(["ask", "How many days?", "--tenant", "acme", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["request_id"] == REQUEST_ID
