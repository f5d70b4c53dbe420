"""All checks over one text, then the policy: the synchronous core the service and bench call."""

from __future__ import annotations

from datetime import date

from llmops_pii import LABELS, Finding, detect_pii
from llmops_safety.domain.injection import detect_injection
from llmops_safety.domain.injection_model import detect_with_model
from llmops_safety.domain.model import (
    NEUTRALISED_LABEL,
    PROMPT_INJECTION,
    TOXICITY,
    Analysis,
    CheckResult,
    InjectionAction,
)
from llmops_safety.domain.policy import DirectionPolicy, decide, injection_triggered
from llmops_safety.domain.toxicity import lexicon_score, mask_benign, segments
from llmops_safety.ports import InjectionClassifier, ToxicityModel

# Classes that mean "toxic". Detoxify's unbiased checkpoint also has identity *mentions*
# ("female", "muslim", ...): those say who a text is about, not that it is toxic.
TOXIC_CLASSES = frozenset({
    "toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack",
    "identity_hate", "sexual_explicit",
})
# A model segment at or above this score is listed as a finding (the verdict uses the policy).
MODEL_FINDING_THRESHOLD = 0.5


class SafetyEngine:
    """`injection_model`, when given, scores beside the rules; the higher of the two counts.

    `injection_threshold` overrides the model's own fitted threshold (a deployment setting).
    """

    def __init__(self, toxicity: ToxicityModel, today: date | None = None,
                 injection_model: InjectionClassifier | None = None,
                 injection_threshold: float | None = None) -> None:
        self.toxicity = toxicity
        self.today = today
        self.injection_model = injection_model
        self.injection_threshold = (
            injection_threshold if injection_threshold is not None or injection_model is None
            else injection_model.threshold)

    @property
    def backend(self) -> str:
        return self.toxicity.name

    def _model(self, text: str) -> tuple[float, dict[str, float], list[Finding]]:
        spans = segments(text)
        if not spans:
            return 0.0, {}, []
        masked = mask_benign(text)
        per_segment = self.toxicity.score([masked[a:b] for a, b in spans])
        classes: dict[str, float] = {}
        findings: list[Finding] = []
        best = 0.0
        for (a, b), probs in zip(spans, per_segment, strict=True):
            for name, p in probs.items():
                classes[name] = max(classes.get(name, 0.0), p)
            score = max((p for n, p in probs.items() if n in TOXIC_CLASSES), default=0.0)
            best = max(best, score)
            if score >= MODEL_FINDING_THRESHOLD:
                findings.append(Finding(a, b, TOXICITY, round(score, 4), f"model.{self.backend}"))
        return best, classes, findings

    def analyse(self, text: str, use_injection_model: bool = True) -> Analysis:
        pii = detect_pii(text, self.today)
        rules, injection_findings = detect_injection(text)
        injection_scores = {"prompt_injection.rules": rules}
        injection = rules
        if (use_injection_model and self.injection_model is not None
                and self.injection_threshold is not None):
            learned, model_findings = detect_with_model(text, self.injection_model,
                                                        self.injection_threshold)
            injection = max(rules, learned)
            injection_scores["prompt_injection.model"] = learned
            injection_findings = [*injection_findings, *model_findings]
        lexicon, lexicon_findings = lexicon_score(text)
        model, classes, model_findings = self._model(text)
        scores = {
            "toxicity": round(max(model, lexicon), 4),
            "toxicity.model": round(model, 4),
            "toxicity.lexicon": lexicon,
            "prompt_injection": injection,
            "pii": 1.0 if pii else 0.0,
            **injection_scores,
        }
        scores.update({f"toxicity.{n}": round(p, 4) for n, p in classes.items() if n != "toxicity"})
        findings = sorted([*pii, *injection_findings, *lexicon_findings, *model_findings])
        return Analysis(tuple(findings), scores, self.backend)

    def check(self, text: str, policy: DirectionPolicy) -> CheckResult:
        analysis = self.analyse(text, policy.uses_injection_model)
        verdict, reasons = decide(analysis, policy)
        hidden = policy.redact | policy.block
        action = policy.injection_action if injection_triggered(analysis, policy) else None
        # Neutralised instructions first: a PII finding inside one goes with it.
        removed = (_merge([f for f in analysis.findings if f.category == PROMPT_INJECTION])
                   if action is InjectionAction.NEUTRALISE else [])
        replacements = {
            f: LABELS[f.category] for f in analysis.pii
            if f.category in hidden and all(f.end <= s or f.start >= e for s, e in removed)
        }
        spans = [(s, e, NEUTRALISED_LABEL) for s, e in removed]
        spans += [(f.start, f.end, label) for f, label in replacements.items()]
        return CheckResult(verdict, analysis, _replace(text, spans), reasons, replacements, action)


def _merge(findings: list[Finding]) -> list[tuple[int, int]]:
    """Overlapping spans (several rules matching one instruction) as one span each."""
    merged: list[tuple[int, int]] = []
    for f in sorted(findings):
        if merged and f.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], f.end))
        else:
            merged.append((f.start, f.end))
    return merged


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, label in sorted(spans):
        out.append(text[pos:start])
        out.append(label)
        pos = end
    out.append(text[pos:])
    return "".join(out)
