"""Detection logic and policy. Everything but service.py is stdlib-only (no protobuf, no I/O);
PII and secret detection and redaction come from llmops_pii."""
