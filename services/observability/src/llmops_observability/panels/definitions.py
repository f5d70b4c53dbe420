"""Every panel of the platform's dashboards: the one definition Grafana's dashboards
(infra/grafana/dashboards, generated), the service's QueryPanel and `llmops report` use.

Conventions of the SQL: every read is exact (FINAL: Kafka delivers at least once and the
tables are ReplacingMergeTrees); every query is limited to the dashboard's time range
(`$__timeFilter_ms(ts)`) and tenant (TENANT below); time series bucket with
`$__timeInterval_ms(ts) AS time`. Percentiles are exact (quantileExactInclusive: linear
interpolation between the closest ranks, like numpy's default).
"""

from __future__ import annotations

from llmops_observability.panels import rollout, training
from llmops_observability.panels.model import Annotation, Dashboard, Panel

# The tenant variable: one tenant, or "All" (sent as '*').
TENANT = "(${tenant:singlequote} = '*' OR tenant = ${tenant:singlequote})"
RANGE = "$__timeFilter_ms(ts)"
WHERE = f"WHERE {RANGE} AND {TENANT}"

DASHBOARDS = {d.uid: d for d in [
    Dashboard("llmops-answers", "LLMOps / Answers",
              "Answer latency by stage, generation speed, errors and traffic by model version."),
    Dashboard("llmops-quality", "LLMOps / Quality and safety",
              "User feedback, groundedness, weak retrieval and safety findings."),
    Dashboard("llmops-ingestion", "LLMOps / Ingestion",
              "Chunks per second through chunking and indexing, and index freshness."),
    Dashboard("llmops-drift", "LLMOps / Drift",
              "Query-embedding drift against the baseline window and the corpus."),
    Dashboard("llmops-platform", "LLMOps / Platform",
              "Events per topic, dead letters by topic and reason, registry changes."),
    training.DASHBOARD,
]}

_PANELS = [
    # ---- answers ------------------------------------------------------------------------
    Panel("answers.latency_by_stage", "Answer latency by stage (p50/p95/p99)", "llmops-answers",
          "timeseries", "ms",
          "Percentiles of each stage's duration (retrieval, generation, safety checks ...) and "
          "of the whole answer ('total'), per time bucket.",
          f"""SELECT $__timeInterval_ms(ts) AS time, stage,
       quantileExactInclusive(0.5)(ms) AS p50,
       quantileExactInclusive(0.95)(ms) AS p95,
       quantileExactInclusive(0.99)(ms) AS p99
FROM (
    SELECT ts, mapUpdate(stage_ms, map('total', duration_ms)) AS stages
    FROM answers FINAL
    {WHERE}
)
ARRAY JOIN mapKeys(stages) AS stage, mapValues(stages) AS ms
GROUP BY time, stage
ORDER BY time, stage""", width=24),
    Panel("answers.latency_summary", "Answer latency by stage over the range", "llmops-answers",
          "table", "ms",
          "p50, p95 and p99 of each stage and of the whole answer over the whole time range.",
          f"""SELECT stage,
       quantileExactInclusive(0.5)(ms) AS p50,
       quantileExactInclusive(0.95)(ms) AS p95,
       quantileExactInclusive(0.99)(ms) AS p99
FROM (
    SELECT mapUpdate(stage_ms, map('total', duration_ms)) AS stages
    FROM answers FINAL
    {WHERE}
)
ARRAY JOIN mapKeys(stages) AS stage, mapValues(stages) AS ms
GROUP BY stage
ORDER BY stage"""),
    Panel("answers.tokens_per_second", "Generation speed by model version", "llmops-answers",
          "timeseries", "suffix: tok/s",
          "Output tokens per second of the generation stage, answers served from the cache "
          "left out.",
          f"""SELECT $__timeInterval_ms(ts) AS time, response_model AS model,
       sum(output_tokens) / (sum(stage_ms['generation']) / 1000) AS tokens_per_second
FROM answers FINAL
{WHERE} AND cached = 0 AND output_tokens > 0 AND stage_ms['generation'] > 0
GROUP BY time, model
ORDER BY time, model"""),
    Panel("answers.ttft", "Time to first token (p50/p95)", "llmops-answers", "timeseries", "ms",
          "gen_ai.server.time_to_first_token of generated (not cached) answers.",
          f"""SELECT $__timeInterval_ms(ts) AS time,
       quantileExactInclusive(0.5)(time_to_first_token_ms) AS p50,
       quantileExactInclusive(0.95)(time_to_first_token_ms) AS p95
FROM answers FINAL
{WHERE} AND cached = 0 AND time_to_first_token_ms > 0
GROUP BY time
ORDER BY time"""),
    Panel("answers.errors_by_reason", "Failed answers by reason", "llmops-answers",
          "timeseries", "short",
          "Answers whose request failed, by error code (INPUT_BLOCKED, OUTPUT_BLOCKED, "
          "GENERATION_UNAVAILABLE, RETRIEVAL_UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL).",
          f"""SELECT $__timeInterval_ms(ts) AS time, error AS reason, count() AS answers
FROM answers FINAL
{WHERE} AND error != ''
GROUP BY time, reason
ORDER BY time, reason"""),
    Panel("answers.traffic_by_model", "Traffic share by model version", "llmops-answers",
          "timeseries", "percentunit",
          "Each model version's share of the answers generated or served from the cache per "
          "time bucket (answers blocked before generation have no model and are left out).",
          f"""SELECT time, model, answers / sum(answers) OVER (PARTITION BY time) AS share
FROM (
    SELECT $__timeInterval_ms(ts) AS time, response_model AS model, count() AS answers
    FROM answers FINAL
    {WHERE} AND response_model != ''
    GROUP BY time, model
)
ORDER BY time, model"""),
    # ---- quality and safety -----------------------------------------------------------------
    Panel("feedback.ratings", "User ratings", "llmops-quality", "timeseries", "short",
          "Ratings submitted with SubmitFeedback, positive (+1) and negative (-1).",
          f"""SELECT $__timeInterval_ms(ts) AS time, if(value > 0, 'positive', 'negative') AS rating,
       count() AS ratings
FROM scores FINAL
{WHERE} AND source = 'feedback'
GROUP BY time, rating
ORDER BY time, rating"""),
    Panel("feedback.share_positive", "Share of positive ratings", "llmops-quality", "stat",
          "percentunit", "Positive ratings among all ratings submitted in the range.",
          f"""SELECT countIf(value > 0) / count() AS share_positive
FROM scores FINAL
{WHERE} AND source = 'feedback'"""),
    Panel("feedback.by_model", "Share of positive ratings by model version", "llmops-quality",
          "barchart", "percentunit",
          "Ratings joined to the answers they rate (scores.request_id = answers.id, answers "
          "up to 7 days older than the range); '(unknown)' when the answer is not stored.",
          f"""SELECT if(a.response_model = '', '(unknown)', a.response_model) AS model,
       countIf(s.value > 0) / count() AS share_positive
FROM (
    SELECT tenant, request_id, value
    FROM scores FINAL
    {WHERE} AND source = 'feedback'
) AS s
LEFT JOIN (
    SELECT tenant, id, response_model
    FROM answers FINAL
    WHERE ts >= $__fromTime_ms - INTERVAL 7 DAY AND ts <= $__toTime_ms AND {TENANT}
) AS a ON a.tenant = s.tenant AND a.id = s.request_id
GROUP BY model
ORDER BY model"""),
    Panel("quality.groundedness", "Groundedness by model version", "llmops-quality",
          "timeseries", "percentunit",
          "Mean share of an answer's sentences supported by a cited passage (answers that "
          "were scored).",
          f"""SELECT $__timeInterval_ms(ts) AS time, response_model AS model,
       avg(groundedness) AS mean_groundedness
FROM answers FINAL
{WHERE} AND groundedness IS NOT NULL
GROUP BY time, model
ORDER BY time, model"""),
    Panel("quality.weak_retrieval", "Weak retrieval share (hallucination risk)",
          "llmops-quality", "timeseries", "percentunit",
          "Share of answered questions whose best retrieval score (cosine of the question "
          "to its best passage) is under the weak_retrieval_threshold variable (answers "
          "blocked at the input, and answers without retrieval, left out).",
          f"""SELECT $__timeInterval_ms(ts) AS time,
       countIf(best_retrieval_score < ${{weak_retrieval_threshold}}) / count() AS weak_share
FROM answers FINAL
{WHERE} AND error != 'INPUT_BLOCKED' AND best_retrieval_score > 0
GROUP BY time
ORDER BY time"""),
    Panel("safety.findings_by_type", "Safety findings by type", "llmops-quality", "timeseries",
          "short", "Finding categories of the safety verdicts (PII kinds, toxicity, prompt "
          "injection ...), inputs and outputs together.",
          f"""SELECT $__timeInterval_ms(ts) AS time, category, count() AS findings
FROM safety_verdicts FINAL
ARRAY JOIN finding_categories AS category
{WHERE}
GROUP BY time, category
ORDER BY time, category"""),
    Panel("safety.verdicts", "Safety verdicts by direction", "llmops-quality", "barchart",
          "short", "Verdicts of the input and output checks over the range.",
          f"""SELECT concat(direction, ' ', verdict) AS outcome, count() AS verdicts
FROM safety_verdicts FINAL
{WHERE}
GROUP BY outcome
ORDER BY outcome"""),
    # ---- ingestion ----------------------------------------------------------------------------
    Panel("ingestion.chunks_per_second", "Ingestion throughput", "llmops-ingestion",
          "timeseries", "cps",
          "Chunks per second created by ingestion and made searchable by the vector store.",
          f"""SELECT $__timeInterval_ms(ts) AS time, event AS stage,
       sum(chunks) / $__interval_s AS chunks_per_second
FROM document_events FINAL
{WHERE} AND event IN ('chunks_created', 'chunks_indexed')
GROUP BY time, stage
ORDER BY time, stage"""),
    Panel("ingestion.index_freshness", "Index freshness (submitted to searchable)",
          "llmops-ingestion", "timeseries", "ms",
          "Per document version, the time from its submission (the latest DocumentSubmitted "
          "of the document before the version's first chunks, or, for documents submitted "
          "over gRPC, its first chunks) to its last batch indexed, by when that batch was "
          "indexed (versions started up to a day before the range).",
          f"""SELECT $__timeInterval_ms(indexed_at) AS time,
       quantileExactInclusive(0.5)(freshness_ms) AS p50,
       quantileExactInclusive(0.95)(freshness_ms) AS p95,
       max(freshness_ms) AS max
FROM (
    SELECT v.indexed_at AS indexed_at,
           arrayFilter(x -> x <= v.created_at, s.submits) AS before,
           if(empty(before), v.created_at, arrayMax(before)) AS started_at,
           dateDiff('millisecond', started_at, v.indexed_at) AS freshness_ms
    FROM (
        SELECT tenant, document_id, doc_version,
               minIf(ts, event = 'chunks_created') AS created_at,
               maxIf(ts, event = 'chunks_indexed') AS indexed_at,
               uniqExactIf(batch_index, event = 'chunks_indexed') AS batches,
               maxIf(batch_count, event = 'chunks_indexed') AS batch_count
        FROM document_events FINAL
        WHERE ts >= $__fromTime_ms - INTERVAL 1 DAY AND ts <= $__toTime_ms AND {TENANT}
          AND event IN ('chunks_created', 'chunks_indexed')
        GROUP BY tenant, document_id, doc_version
        HAVING countIf(event = 'chunks_created') > 0 AND batches > 0
           AND batches >= batch_count AND indexed_at >= $__fromTime_ms
    ) AS v
    LEFT JOIN (
        SELECT tenant, document_id, groupArray(ts) AS submits
        FROM document_events FINAL
        WHERE ts >= $__fromTime_ms - INTERVAL 1 DAY AND ts <= $__toTime_ms AND {TENANT}
          AND event = 'submitted'
        GROUP BY tenant, document_id
    ) AS s ON s.tenant = v.tenant AND s.document_id = v.document_id
)
GROUP BY time
ORDER BY time"""),
    # ---- drift --------------------------------------------------------------------------------
    Panel("drift.centroid_distance", "Centroid distance against its threshold", "llmops-drift",
          "timeseries", "short",
          "Cosine distance between the recent window's query-embedding centroid and the "
          "reference's (baseline window, corpus), with the threshold in force.",
          f"""SELECT $__timeInterval_ms(ts) AS time, reference,
       max(centroid_distance) AS distance, max(threshold) AS drift_threshold
FROM drift FINAL
{WHERE}
GROUP BY time, reference
ORDER BY time, reference"""),
    Panel("drift.auc", "Two-sample test: classifier ROC AUC", "llmops-drift", "timeseries",
          "short", "ROC AUC of a classifier told to separate the recent window from the "
          "reference (0.5: indistinguishable); measured when the centroid distance crossed "
          "its threshold.",
          f"""SELECT $__timeInterval_ms(ts) AS time, reference, max(roc_auc) AS auc
FROM drift FINAL
{WHERE} AND roc_auc IS NOT NULL
GROUP BY time, reference
ORDER BY time, reference"""),
    Panel("drift.detections", "Drift detections", "llmops-drift", "table", "short",
          "Confirmed drift (a drift-detected event was published), latest first.",
          f"""SELECT ts AS time, tenant, reference, centroid_distance, threshold, roc_auc,
       current_samples, reference_samples, window_start, window_end
FROM drift FINAL
{WHERE} AND detected = 1
ORDER BY time DESC, tenant, reference
LIMIT 100""", width=24),
    # ---- platform -----------------------------------------------------------------------------
    Panel("platform.events_per_topic", "Events per topic", "llmops-platform", "timeseries",
          "cps", "Events per second on each platform topic, as stored.",
          f"""SELECT $__timeInterval_ms(ts) AS time, topic, count() / $__interval_s AS events_per_second
FROM events FINAL
{WHERE}
GROUP BY time, topic
ORDER BY time, topic"""),
    Panel("platform.dead_letters", "Dead letters by topic and reason", "llmops-platform",
          "barchart", "short", "Messages a consumer gave up on, by dead-letter topic and reason.",
          f"""SELECT concat(dlq_topic, ' / ', reason) AS topic_reason, count() AS messages
FROM dead_letters FINAL
{WHERE}
GROUP BY topic_reason
ORDER BY messages DESC, topic_reason"""),
    Panel("registry.changes", "Registry changes", "llmops-platform", "table", "short",
          "Model and prompt versions created, alias and label moves (shared ones included), "
          "latest first.",
          f"""SELECT ts AS time, tenant, kind, name, pointer, from_version, to_version, actor
FROM registry_changes FINAL
WHERE {RANGE} AND ({TENANT} OR tenant = '')
ORDER BY time DESC, id
LIMIT 100""", width=24),
]

_PANELS += rollout.panels(WHERE, TENANT)
_PANELS += training.panels(WHERE)

PANELS: dict[str, Panel] = {p.id: p for p in _PANELS}

# Registry changes (alias and label moves, new versions) as markers on the time series of the
# dashboards whose numbers they move: "which model was production when p95 jumped?".
ANNOTATIONS = [
    Annotation("Registry changes", ("llmops-answers", "llmops-quality"), "#e8743b",
               f"""SELECT ts AS time,
       concat(kind, ' ', name, if(pointer = '', '', concat(' ', pointer)), ': v',
              toString(from_version), ' -> v', toString(to_version)) AS text,
       [toString(kind), name] AS tags
FROM registry_changes FINAL
WHERE {RANGE} AND ({TENANT} OR tenant = '')
ORDER BY time"""),
]
