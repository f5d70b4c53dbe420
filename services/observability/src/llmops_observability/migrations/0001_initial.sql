-- The observability store's first schema. Every table:
--   * is keyed tenant first, then day, then id (ORDER BY (tenant, toDate(ts), id)), so a
--     tenant's range scans and deletions touch few parts;
--   * is a ReplacingMergeTree(version, is_deleted): Kafka delivers at least once, the same
--     event always becomes the same row (same key, same version), and reads that must be exact
--     use FINAL (or LIMIT 1 BY), so a replay changes nothing;
--   * is partitioned by month; its TTL comes from settings (ALTER ... MODIFY TTL at start);
--   * keeps free text only PII-redacted, compressed with ZSTD.
-- Column names follow OpenTelemetry's GenAI conventions where one exists
-- (gen_ai.operation.name, gen_ai.response.model, gen_ai.usage.input_tokens/output_tokens,
-- gen_ai.server.time_to_first_token).
-- Statements are separated by a line holding only ";".

-- Every event of every platform topic (one row per event id and topic).
CREATE TABLE IF NOT EXISTS events
(
    tenant      LowCardinality(String),
    ts          DateTime64(3, 'UTC'),
    id          String,
    topic       LowCardinality(String),
    producer    LowCardinality(String),
    bytes       UInt32,
    trace_id    String,
    version     UInt64,
    is_deleted  UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id, topic)
;
-- One row per answer (InferenceCompleted); id is the request id.
CREATE TABLE IF NOT EXISTS answers
(
    tenant                  LowCardinality(String),
    ts                      DateTime64(3, 'UTC'),
    id                      String,
    trace_id                String,
    operation_name          LowCardinality(String),
    response_model          LowCardinality(String),
    prompt_version          LowCardinality(String),
    input_tokens            UInt32,
    output_tokens           UInt32,
    usage                   Map(LowCardinality(String), UInt64),
    time_to_first_token_ms  Float64,
    duration_ms             Float64,
    stage_ms                Map(LowCardinality(String), Float64),
    streamed                UInt8,
    cached                  UInt8,
    error                   LowCardinality(String),
    input_safety            LowCardinality(String),
    output_safety           LowCardinality(String),
    guarded_passages        UInt16,
    retrieved_chunk_ids     Array(String) CODEC(ZSTD(1)),
    cited_document_ids      Array(String) CODEC(ZSTD(1)),
    cited_chunk_ids         Array(String) CODEC(ZSTD(1)),
    best_retrieval_score    Float32,
    groundedness            Nullable(Float32),
    answer_sentences        UInt16,
    supported_sentences     UInt16,
    question                String CODEC(ZSTD(3)),
    answer                  String CODEC(ZSTD(3)),
    embedding_model         LowCardinality(String),
    question_embedding      Array(Float32) CODEC(ZSTD(1)),
    version                 UInt64,
    is_deleted              UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- The document path, one row per event: submitted, chunks_created (a batch of chunks),
-- chunks_indexed (a batch searchable), deleted. Index freshness of a document version is the
-- time from its submission to its last batch indexed.
CREATE TABLE IF NOT EXISTS document_events
(
    tenant          LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    id              String,
    event           LowCardinality(String),
    document_id     String,
    doc_version     UInt32,
    chunks          UInt32,
    total_chunks    UInt32,
    tokens          UInt32,
    bytes           UInt64,
    batch_index     UInt32,
    batch_count     UInt32,
    source          LowCardinality(String),
    content_type    LowCardinality(String),
    version         UInt64,
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- Safety verdicts (SafetyVerdictIssued), with the finding categories and rules that fired.
CREATE TABLE IF NOT EXISTS safety_verdicts
(
    tenant              LowCardinality(String),
    ts                  DateTime64(3, 'UTC'),
    id                  String,
    direction           LowCardinality(String),
    verdict             LowCardinality(String),
    finding_categories  Array(LowCardinality(String)),
    finding_rules       Array(LowCardinality(String)),
    scores              Map(LowCardinality(String), Float32),
    reasons             Array(String),
    toxicity_backend    LowCardinality(String),
    text_chars          UInt32,
    redacted_excerpt    String CODEC(ZSTD(3)),
    version             UInt64,
    is_deleted          UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- Registry history: model versions and prompt versions created, alias and label moves.
-- tenant is the scope ('' for shared aliases, labels and versions).
CREATE TABLE IF NOT EXISTS registry_changes
(
    tenant          LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    id              String,
    kind            LowCardinality(String),
    name            String,
    pointer         String,
    from_version    UInt32,
    to_version      UInt32,
    actor           String,
    reason          String CODEC(ZSTD(3)),
    sequence        UInt64,
    format          LowCardinality(String),
    base_model      String,
    version         UInt64,
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- What landed in each dead-letter topic; id is "<dlq topic>/<partition>/<offset>".
CREATE TABLE IF NOT EXISTS dead_letters
(
    tenant          LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    id              String,
    dlq_topic       LowCardinality(String),
    source_topic    LowCardinality(String),
    reason          LowCardinality(String),
    consumer_group  LowCardinality(String),
    error           String CODEC(ZSTD(3)),
    payload_bytes   UInt64,
    version         UInt64,
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- Scores of answers, told apart by source: 'feedback' (a user's rating), 'groundedness'
-- (automatic, per answer), 'retrieval' (best retrieval score and the weak-retrieval flag),
-- 'eval' (evaluation runs). request_id joins a score to answers.id.
CREATE TABLE IF NOT EXISTS scores
(
    tenant          LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    id              String,
    request_id      String,
    source          LowCardinality(String),
    name            LowCardinality(String),
    value           Float64,
    comment         String CODEC(ZSTD(3)),
    response_model  LowCardinality(String),
    run_id          String,
    version         UInt64,
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- Drift measurements of query embeddings: one row per tenant, reference and run.
CREATE TABLE IF NOT EXISTS drift
(
    tenant              LowCardinality(String),
    ts                  DateTime64(3, 'UTC'),
    id                  String,
    metric              LowCardinality(String),
    reference           LowCardinality(String),
    centroid_distance   Float64,
    threshold           Float64,
    roc_auc             Nullable(Float64),
    detected            UInt8,
    current_samples     UInt32,
    reference_samples   UInt32,
    window_start        DateTime64(3, 'UTC'),
    window_end          DateTime64(3, 'UTC'),
    version             UInt64,
    is_deleted          UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
-- A deterministic sample of the corpus' chunk vectors (from ChunkVectors), the reference
-- "corpus" of query drift; id is the chunk id.
CREATE TABLE IF NOT EXISTS corpus_sample
(
    tenant          LowCardinality(String),
    ts              DateTime64(3, 'UTC'),
    id              String,
    document_id     String,
    embedding_model LowCardinality(String),
    embedding       Array(Float32) CODEC(ZSTD(1)),
    version         UInt64,
    is_deleted      UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
