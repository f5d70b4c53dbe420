"""Safety service: toxicity, PII detection and redaction, prompt-injection detection."""
