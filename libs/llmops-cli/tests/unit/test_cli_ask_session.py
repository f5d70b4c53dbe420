"""`llmops ask --session ID` sends the session id (sticky canary routing); without it, none."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.inference.v1 import inference_pb2, inference_pb2_grpc
from llmops_cli.testing import fake_service, run

pytestmark = pytest.mark.unit


class RecordingInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[inference_pb2.GenerateRequest] = []

    def Generate(self, request: Any, context: Any) -> inference_pb2.GenerateResponse:
        self.requests.append(request)
        return inference_pb2.GenerateResponse(answer="25 days.", model_version="m@2")

    def GenerateStream(self, request: Any, context: Any) -> Any:
        self.requests.append(request)
        yield inference_pb2.GenerateStreamResponse(final=inference_pb2.GenerateResponse(
            answer="25 days.", model_version="m@2"))


def test_ask_sends_the_session_id(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake = RecordingInference()
    with fake_service(inference_pb2_grpc.add_InferenceServiceServicer_to_server, fake,
                      "LLMOPS_INFERENCE_ADDR", monkeypatch):
        assert run(["ask", "How many days?", "--tenant", "acme", "--session", "chat-42"]) == 0
        assert run(["ask", "How many days?", "--tenant", "acme", "--session", "chat-42",
                    "--stream"]) == 0
        assert run(["ask", "How many days?", "--tenant", "acme"]) == 0
    assert [r.session_id for r in fake.requests] == ["chat-42", "chat-42", ""]
    assert "model m@2" in capsys.readouterr().out
