"""Trainer service: fine-tuning jobs on DeepSpeed, dataset versions, registration with lineage."""
