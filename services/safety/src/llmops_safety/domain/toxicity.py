"""Toxicity helpers around the model: sentence segments, a curated lexicon, benign-idiom masking.

The offline model (alt-profanity-check) knows English swearing but not insults without
swearing, threats, or Korean at all; the lexicon covers those. It also over-reacts to
technical English ("kill the process"), so such idioms are masked before the model sees them.
The lexicon score is a noisy-OR of its matches; directed forms ("you are an idiot") weigh
more than bare words ("idiot").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from llmops_pii import Finding
from llmops_safety.domain.model import TOXICITY

_INSULT_EN = (r"(?:idiots?|morons?|imbeciles?|cretins?|losers?|clowns?|fools?|dumbass(?:es)?|jerks?"
              r"|scum|trash|garbage|worthless|pathetic|useless|incompetent|stupid|dumb|brainless"
              r"|brain-?dead|retard(?:ed|s)?|disgusting|pigs?|parasites?|lowlifes?|dimwits?|halfwits?"
              r"|nitwits?|dunces?|freaks?|creeps?|cowards?|idiotic|moronic|dumbest|stupidest"
              r"|waste of (?:space|air|oxygen)|piece of (?:garbage|trash|crap|shit))")
_YOU_ARE = r"\b(?:you(?:'re| are| r)?|ur|u r)\s+(?:such\s+|so\s+|a\s+|an\s+|the\s+|just\s+|really\s+" \
           r"|completely\s+|totally\s+|truly\s+|fucking\s+|an?\s+\w+\s+)*"

# (rule, weight, pattern); patterns run on lower-cased text.
RULES: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, weight, re.compile(pattern)) for name, weight, pattern in (
        # English: directed insults
        ("en.insult.directed", 0.9, _YOU_ARE + _INSULT_EN + r"\b"),
        ("en.insult.vocative", 0.85, r"\byou\s+(?:\w+\s+)?" + _INSULT_EN + r"\b"),
        ("en.insult.only_a", 0.85, r"\bonly (?:an?|some) " + _INSULT_EN + r"\s+(?:would|could)\b"),
        ("en.insult.are_you", 0.85, r"\bare you\s+(?:an?\s+)?" + _INSULT_EN + r"\b"),
        ("en.insult.your", 0.75,
         r"\byour\s+(?:stupid|idiotic|pathetic|dumb|useless|moronic|worthless)\s+\w+"),
        ("en.insult.like_you", 0.8, r"\b" + _INSULT_EN + r"\s+like\s+you\b"),
        ("en.insult.nobody_wants", 0.85,
         r"\bnobody\s+(?:wants|likes|cares about|needs)\s+you\b|\bno one\s+(?:wants|likes)\s+you\b"),
        ("en.insult.shut_up", 0.7, r"\bshut\s+(?:the\s+\w+\s+)?up\b"),
        ("en.insult.word", 0.5, r"\b" + _INSULT_EN + r"\b"),
        # English: threats
        ("en.threat.harm", 0.95,
         r"\bi(?:'ll| will|'m going to|'m gonna| am going to| am gonna|'d| would)\s+(?:\w+\s+){0,2}"
         r"(?:kill|hurt|destroy|murder|beat|break|stab|shoot|strangle|choke|end|find)\s+(?:you|your)\b"),
        ("en.threat.where_you_live", 0.95, r"\b(?:find|know|found out)\s+where\s+you\s+live\b"),
        ("en.threat.self_harm", 0.95, r"\b(?:go\s+)?kill\s+yourself\b|\bkys\b"),
        ("en.threat.break_bones", 0.9, r"\bbreak\s+your\s+(?:legs?|neck|face|bones|arms?|jaw)\b"),
        ("en.threat.watch_back", 0.85, r"\bwatch your back\b"),
        ("en.threat.regret", 0.5, r"\byou(?:'ll| will)\s+regret\b"),
        ("en.threat.dead", 0.8, r"\byou(?:'re| are)\s+(?:so\s+)?(?:dead|going to die|gonna die)\b"),
        # Korean (no word boundaries: particles attach to the word)
        ("ko.profanity", 0.9,
         r"씨발|씨바|씨팔|(?<!\w)시발(?!점|역|택)|ㅅㅂ|ㅆㅂ|좆|개새끼|개새기|개색기|개세끼|개새야|병신|븅신|ㅂㅅ"
         r"|지랄|염병|니애미|느금마|엠창|썅"),
        ("ko.insult", 0.85,
         r"닥쳐|찐따|등신|미친놈|미친년|미친새끼|또라이|돌대가리|정신병자|한남충|김치녀|쓰레기\s*같은"
         r"|버러지|벌레\s*같은"),
        ("ko.go_away", 0.8, r"(?<![불등전원화면])[이가]?\s*꺼져(?:라|버려)?(?!\s*(?:있|서|버렸|요|도))"),
        ("ko.threat", 0.95,
         r"죽여\s*버[리릴린려]|죽일\s*거|죽일거|죽여\s*줄까|뒤질래|뒤져라|뒤지고\s*싶|가만\s*안\s*둔다|가만\s*두지\s*않"
         r"|죽고\s*싶냐|패\s*버린다|찾아\s*간다"),
        ("ko.insult.mild", 0.5, r"멍청|바보|한심|쓰레기|븅"),
        ("ko.insult.directed", 0.85,
         r"(?:너|넌|니가|네가|너는|당신|니)\s*(?:\S+\s*){0,2}?(?:멍청|바보|한심|쓰레기|못생|무능|찌질)"),
    )
)

# Technical and idiomatic uses the model mistakes for violence or insults.
_BENIGN = re.compile(
    r"(?i)\bkill(?:s|ed|ing)?\b(?=\s*(?:-\d+\s*|-[a-z]+\s*)*(?:the\s+|all\s+|any\s+|a\s+|this\s+|that\s+)?"
    r"(?:stale\s+|old\s+|hung\s+|zombie\s+|running\s+|stuck\s+|idle\s+|orphan(?:ed)?\s+)?"
    r"(?:process(?:es)?|pods?|jobs?|tasks?|sessions?|containers?|quer(?:y|ies)|commands?|signals?"
    r"|switch|pid|threads?|workers?|connections?|명령|프로세스|-\d))"
    r"|\bkill\s+-\d+|\bkilling me\b|\bkiller\s+(?:feature|app|deal|presentation|idea)\b"
    r"|\bthe\s+(?:stupid|dumb)\s+(?:printer|computer|laptop|bug|thing|machine|app|code|build|wifi)\b"
)
_SENTENCE = re.compile(r"[^.!?。\n]+[.!?。]*|\n+")


def segments(text: str, max_chars: int = 400) -> list[tuple[int, int]]:
    """Sentence spans (long sentences cut at `max_chars`), so one insult in a long text is
    scored on its own instead of being diluted by the rest."""
    spans: list[tuple[int, int]] = []
    for m in _SENTENCE.finditer(text):
        start, end = m.start(), m.end()
        if not text[start:end].strip():
            continue
        while end - start > max_chars:
            spans.append((start, start + max_chars))
            start += max_chars
        spans.append((start, end))
    return spans


def mask_benign(text: str) -> str:
    """The text with benign idioms blanked out (same length, so spans still line up)."""
    return _BENIGN.sub(lambda m: " " * len(m.group()), text)


def _matches(lowered: str) -> Iterator[tuple[str, float, int, int]]:
    for name, weight, pattern in RULES:
        for m in pattern.finditer(lowered):
            yield name, weight, m.start(), m.end()


def lexicon_score(text: str) -> tuple[float, list[Finding]]:
    """Noisy-OR of the strongest match per rule; findings carry each rule's first span."""
    lowered = mask_benign(text).lower()
    best: dict[str, Finding] = {}
    for name, weight, start, end in _matches(lowered):
        rule = f"lexicon.{name}"
        if rule not in best:
            best[rule] = Finding(start, end, TOXICITY, weight, rule)
    # A bare insult word inside a directed insult is the same evidence counted twice.
    if "lexicon.en.insult.word" in best and any(
        k.startswith("lexicon.en.insult.") and k != "lexicon.en.insult.word" for k in best
    ):
        del best["lexicon.en.insult.word"]
    if "lexicon.ko.insult.mild" in best and "lexicon.ko.insult.directed" in best:
        del best["lexicon.ko.insult.mild"]
    remaining = 1.0
    for f in best.values():
        remaining *= 1.0 - f.score
    return round(1.0 - remaining, 4), sorted(best.values())
