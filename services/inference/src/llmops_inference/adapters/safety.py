"""Guard on the safety service's gRPC API, called as the same tenant (its key is forwarded)."""

from __future__ import annotations

import grpc

from llmops.safety.v1 import safety_pb2, safety_pb2_grpc
from llmops_inference.domain.model import InjectionAction, SafetyResult, Verdict
from llmops_kit.grpc_client import call_peer

_DIRECTIONS = {"input": safety_pb2.DIRECTION_INPUT, "output": safety_pb2.DIRECTION_OUTPUT,
               "context": safety_pb2.DIRECTION_CONTEXT}
_ACTIONS = {
    safety_pb2.INJECTION_ACTION_DROP: InjectionAction.DROPPED,
    safety_pb2.INJECTION_ACTION_NEUTRALISE: InjectionAction.NEUTRALISED,
}
_VERDICTS = {
    safety_pb2.VERDICT_ALLOW: Verdict.ALLOW,
    safety_pb2.VERDICT_REDACT: Verdict.REDACT,
    safety_pb2.VERDICT_BLOCK: Verdict.BLOCK,
}


class SafetyGuard:
    def __init__(self, address: str, timeout_seconds: float) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = safety_pb2_grpc.SafetyServiceStub(self.channel)
        self.timeout = timeout_seconds

    async def check(self, text: str, direction: str) -> SafetyResult:
        # Fail closed: any failure raises, so an answer is never served unchecked.
        resp = await call_peer(
            self.stub.CheckText,
            safety_pb2.CheckTextRequest(text=text, direction=_DIRECTIONS[direction]),
            peer="safety", timeout=self.timeout, unavailable="SAFETY_UNAVAILABLE")
        return SafetyResult(
            verdict=_VERDICTS.get(resp.verdict, Verdict.BLOCK),
            redacted_text=resp.redacted_text or text,
            categories=tuple(sorted({f.category for f in resp.findings})),
            replacements=tuple((f.start, f.end, f.replacement) for f in resp.findings
                               if f.replacement),
            injection_action=_ACTIONS.get(resp.injection_action),
            injection_score=resp.scores.get("prompt_injection", 0.0),
        )

    async def redact(self, text: str) -> str:
        if not text:
            return text
        resp = await call_peer(self.stub.Redact, safety_pb2.RedactRequest(text=text),
                               peer="safety", timeout=self.timeout,
                               unavailable="SAFETY_UNAVAILABLE")
        return resp.redacted_text

    async def close(self) -> None:
        await self.channel.close()
