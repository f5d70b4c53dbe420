"""Dataset versions: validated, deduplicated, redacted, split and stored by content hash."""
