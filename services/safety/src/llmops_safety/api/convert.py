"""Domain values <-> protobuf, shared by the gRPC servicer and the event publisher."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from llmops.safety.v1 import safety_pb2
from llmops_pii import Finding
from llmops_safety.domain.model import Direction, InjectionAction, Verdict
from llmops_safety.domain.policy import DirectionPolicy, TenantPolicy

DIRECTION_FROM_PB = {
    safety_pb2.DIRECTION_INPUT: Direction.INPUT,
    safety_pb2.DIRECTION_OUTPUT: Direction.OUTPUT,
    safety_pb2.DIRECTION_CONTEXT: Direction.CONTEXT,
}
DIRECTION_TO_PB = {v: k for k, v in DIRECTION_FROM_PB.items()}
VERDICT_TO_PB = {
    Verdict.ALLOW: safety_pb2.VERDICT_ALLOW,
    Verdict.REDACT: safety_pb2.VERDICT_REDACT,
    Verdict.BLOCK: safety_pb2.VERDICT_BLOCK,
}


INJECTION_ACTION_TO_PB = {
    InjectionAction.DROP: safety_pb2.INJECTION_ACTION_DROP,
    InjectionAction.NEUTRALISE: safety_pb2.INJECTION_ACTION_NEUTRALISE,
}


def findings_pb(findings: Iterable[Finding], replacements: Mapping[Finding, str] | None = None
                ) -> list[safety_pb2.Finding]:
    labels = replacements or {}
    return [safety_pb2.Finding(category=f.category, start=f.start, end=f.end, score=f.score,
                               rule=f.rule, replacement=labels.get(f, "")) for f in findings]


def direction_policy_pb(policy: DirectionPolicy) -> safety_pb2.DirectionPolicy:
    msg = safety_pb2.DirectionPolicy(redact_categories=sorted(policy.redact),
                                     block_categories=sorted(policy.block),
                                     injection_action=INJECTION_ACTION_TO_PB[policy.injection_action])
    if policy.toxicity_block is not None:
        msg.toxicity_block_threshold = policy.toxicity_block
    if policy.injection_block is not None:
        msg.injection_block_threshold = policy.injection_block
    return msg


def tenant_policy_pb(policy: TenantPolicy) -> safety_pb2.TenantPolicy:
    return safety_pb2.TenantPolicy(input=direction_policy_pb(policy.input),
                                   output=direction_policy_pb(policy.output),
                                   context=direction_policy_pb(policy.context))
