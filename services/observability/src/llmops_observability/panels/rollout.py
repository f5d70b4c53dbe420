"""The canary analysis' panel: one tenant's answers per model version in a window.

The model registry's canary controller reads it through QueryPanel (tenant = the canary's,
since/until = the window) and compares the candidate's row with production's. Answers served
from the cache are left out (their latency says nothing about the model); errors are failures
of the request, not refusals of the safety checks (those count as safety blocks, the output
check's only: the input check runs before a model is involved). Negative feedback is counted
for the window's answers whenever it was submitted.
"""

from __future__ import annotations

from llmops_observability.panels.model import Panel

VERSION_METRICS = "rollout.version_metrics"


def panels(where: str, tenant: str) -> list[Panel]:
    """`where`/`tenant`: the definitions' range-and-tenant filter and tenant filter."""
    return [Panel(
        VERSION_METRICS, "Canary analysis: answers by model version", "llmops-answers",
        "table", "short",
        "Per model version over the range: answers, failed requests, p95 latency (ms), output "
        "safety blocks, mean groundedness and negative ratings, generated answers only.",
        f"""SELECT a.response_model AS model_version,
       count() AS requests,
       countIf(a.error NOT IN ('', 'INPUT_BLOCKED', 'OUTPUT_BLOCKED')) AS errors,
       quantileExactInclusive(0.95)(a.duration_ms) AS p95_ms,
       countIf(a.output_safety = 'block') AS safety_blocks,
       avgIf(assumeNotNull(a.groundedness), isNotNull(a.groundedness)) AS groundedness,
       sum(ifNull(fb.negative, 0)) AS negative_feedback
FROM (
    SELECT tenant, id, response_model, error, duration_ms, output_safety, groundedness
    FROM answers FINAL
    {where} AND response_model != '' AND cached = 0
) AS a
LEFT JOIN (
    SELECT tenant, request_id, countIf(value < 0) AS negative
    FROM scores FINAL
    WHERE source = 'feedback' AND ts >= $__fromTime_ms AND {tenant}
    GROUP BY tenant, request_id
) AS fb ON fb.tenant = a.tenant AND fb.request_id = a.id
GROUP BY model_version
ORDER BY model_version""", width=24)]
