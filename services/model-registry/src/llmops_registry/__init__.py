"""Model registry: model and prompt versions, aliases and labels with history, lineage."""
