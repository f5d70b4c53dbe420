"""The learned prompt-injection detector's side of the verdict: windows in, findings out.

The classifier gives a probability per window (see domain/windows.py). Its operating
threshold (fitted with the weights, or set per deployment) is mapped onto the rules' scale by
a shift in log-odds, so that a window exactly at the threshold scores the policy's default
block level (0.7) and the ordering of scores is kept: a tenant that lowers or raises
`injection_block` moves the rules and the model together.
"""

from __future__ import annotations

import math

from llmops_pii import Finding
from llmops_safety.domain.model import PROMPT_INJECTION
from llmops_safety.domain.windows import windows
from llmops_safety.ports import InjectionClassifier

# The default input policy's injection_block: where the model's threshold lands.
ANCHOR = 0.7
_EPS = 1e-6


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def calibrate(probability: float, threshold: float) -> float:
    """The probability on the rules' scale: `threshold` -> ANCHOR, monotonic, in (0, 1)."""
    z = _logit(probability) - _logit(threshold) + _logit(ANCHOR)
    return 1.0 / (1.0 + math.exp(-z))


def detect_with_model(text: str, model: InjectionClassifier,
                      threshold: float) -> tuple[float, list[Finding]]:
    """The highest calibrated window score, and a finding per window at or over `threshold`."""
    spans = windows(text)
    if not spans:
        return 0.0, []
    probabilities = model.score([text[a:b] for a, b in spans])
    best = 0.0
    findings: list[Finding] = []
    for (a, b), p in zip(spans, probabilities, strict=True):
        score = round(calibrate(p, threshold), 4)
        best = max(best, score)
        if p >= threshold:
            findings.append(Finding(a, b, PROMPT_INJECTION, score, f"model.{model.name}"))
    return best, findings
