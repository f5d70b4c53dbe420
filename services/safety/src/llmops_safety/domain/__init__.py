"""Detection logic and policy. Everything but service.py is stdlib-only (no protobuf, no I/O);
redaction.py is the in-process PII library."""
