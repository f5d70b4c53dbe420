"""The training worker: one DeepSpeed job (ZeRO 1-3, full or LoRA) on 1-2 CPU processes.

Interface (docs: services/trainer/README.md, "Worker"):
- `config.validate(spec) -> list[str]`: reasons a job.json cannot run (empty = valid);
- `launch.command(job_dir, world_size) -> list[str]`: the torchrun argv for the job;
- `python -m llmops_trainer.worker --job-dir DIR`: appends JSON lines to DIR/progress.jsonl,
  checkpoints under DIR/checkpoints/, resumes from the latest complete one when started again,
  exports the best weights (by validation loss) to DIR/output/ with training_summary.json.

Nothing here imports torch at import time: trainer-svc imports config and launch cheaply.
"""
