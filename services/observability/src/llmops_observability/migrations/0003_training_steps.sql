-- Steps of the trainer's continuous-training loops (ContinuousTrainingStep, topic
-- llmops.trainer.continuous-training.v1): one row per step, id "<loop id>-<sequence>".
CREATE TABLE IF NOT EXISTS training_steps
(
    tenant              LowCardinality(String),
    ts                  DateTime64(3, 'UTC'),
    id                  String,
    loop_id             String,
    trigger             LowCardinality(String),
    trigger_ref         String,
    step                LowCardinality(String),
    sequence            UInt32,
    dataset_id          String,
    job_id              String,
    model_name          String,
    model_version       UInt32,
    production_version  UInt32,
    eval_dataset        String,
    reason              String CODEC(ZSTD(3)),
    final               UInt8,
    version             UInt64,
    is_deleted          UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toDate(ts), id)
;
