"""Prompt-injection and jailbreak detection (English and Korean): weighted rules, noisy-OR.

Strong rules need an *override* shape (a verb aimed at the model's own instructions: "ignore
all previous instructions", "이전 지시를 무시"), so questions that merely mention
instructions or rules ("What are the instructions for the vacation form?") score nothing.
Weak rules (role-play, "no restrictions", developer mode) only block in combination.
The score is 1 - prod(1 - w) over the strongest match of each rule.

Cheap de-obfuscation first: NFKC, zero-width characters dropped, leetspeak inside words
("1gn0r3" -> "ignore"), letter-spaced words ("i g n o r e"), and base64 blobs decoded and
scanned once.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

from llmops_pii import Finding
from llmops_safety.domain.model import PROMPT_INJECTION

_S = r"[^.!?\n]"  # within one sentence
_QUAL = r"(?:previous|prior|above|earlier|preceding|foregoing|initial|original|system|all|any|your|every)"
_RULE_WORDS = (r"(?:instructions?|prompts?|directions?|rules|guidelines|guidance|programming|context"
               r"|commands?|messages?|constraints|directives)")

RULES: tuple[tuple[str, float, re.Pattern[str]], ...] = tuple(
    (name, weight, re.compile(pattern)) for name, weight, pattern in (
        # English
        ("ignore_previous", 0.9,
         rf"\b(?:ignore|disregard|forget|override|skip|abandon|bypass|neglect)\b{_S}{{0,30}}?\b{_QUAL}\b"
         rf"{_S}{{0,20}}?\b{_RULE_WORDS}\b"),
        ("forget_everything", 0.8,
         rf"\b(?:forget|ignore|disregard)\s+(?:everything|all|anything)\b{_S}{{0,25}}"
         r"\b(?:told|said|above|before|instructed|learned)\b"),
        ("reveal_prompt", 0.85,
         rf"\b(?:reveal|show|print|display|output|repeat|dump|leak|expose|tell me|give me|copy|write out)"
         rf"\b{_S}{{0,30}}?\b(?:your|the)\s+(?:system|initial|hidden|secret|original|internal|developer)"
         r"\s+(?:prompts?|instructions?|messages?|directives|configuration)\b"),
        ("ask_prompt", 0.8,
         r"\bwhat(?:'s| is| are| were)\s+your\s+(?:system|initial|hidden|original|secret)\s+"
         r"(?:prompts?|instructions?|messages?)\b"),
        ("output_above", 0.8,
         rf"\b(?:output|print|repeat|show|reveal|copy)\b{_S}{{0,15}}\b(?:everything|all|the text|the words)"
         rf"\b{_S}{{0,10}}\b(?:above|before)\b"),
        ("persona_jailbreak", 0.9,
         rf"\b(?:you are|you're|act as|become|switch to|enter|answer as|respond as|reply as)\b{_S}{{0,20}}?"
         r"\b(?:dan|do anything now|jailbr(?:oken|eak)|god mode|unfiltered|uncensored|unrestricted"
         r"|evil ?bot|dude mode)\b"),
        ("do_anything_now", 0.8, r"\bdo anything now\b|\bjailbreak mode\b"),
        ("developer_mode", 0.4, r"\bdeveloper mode\b"),
        ("enable_developer_mode", 0.6, r"\b(?:enable|activate|enter|switch to)\s+developer mode\b"),
        ("no_restrictions", 0.5,
         r"\b(?:no|without|free of|free from|zero)\s+(?:any\s+)?(?:restrictions|limits|limitations|filters?"
         r"|censorship|rules|content polic(?:y|ies)|ethical guidelines|ethics|morals|guidelines)\b"),
        ("ai_without_limits", 0.8,
         rf"\b(?:ai|assistant|model|chatbot|bot)\b{_S}{{0,15}}\b(?:with no|without(?: any)?|free of)\s+"
         r"(?:restrictions|limits|limitations|filters?|rules|censorship|content polic(?:y|ies)"
         r"|guidelines)\b"),
        ("say_anything", 0.4, r"\b(?:say|do|answer) anything\b"),
        ("roleplay", 0.35,
         r"\b(?:pretend|imagine you|role-?play|act as|you are now|from now on|stay in character|simulate)\b"),
        ("bypass_safety", 0.85,
         rf"\b(?:bypass|circumvent|disable|turn off|get around|evade|override|ignore)\b{_S}{{0,25}}?"
         r"\b(?:(?:your|its|the|all|any)\s+(?:own\s+)?(?:safety|content|ethical|moderation)\s+"
         r"(?:filters?|guidelines|guardrails|polic(?:y|ies)|restrictions|rules|safeguards)"
         r"|your\s+(?:filters?|guidelines|guardrails|restrictions|rules|safeguards|programming))\b"),
        ("role_tokens", 0.6,
         r"(?:^|\n)\s*(?:system|assistant)\s*:|<\|im_start\|>|<\|system\|>|\[/?inst\]"
         r"|###\s*(?:system|instruction)|<<sys>>|\bnew (?:instructions?|rules?|system prompt)\s*:"),
        ("obey_me", 0.6,
         r"\b(?:only (?:obey|listen to|follow) me|you (?:must|will) (?:obey|comply with) (?:me|every|all)"
         r"|comply with every (?:user )?request)\b"),
        ("grandma_exploit", 0.7,
         rf"\b(?:deceased|dead|late)\s+(?:grand(?:ma|mother|pa|father)|mother|father)\b{_S}{{0,60}}"
         r"\b(?:used to|would)\b"),
        ("claims_developer", 0.6,
         r"\bi(?:'m| am) (?:your|the) (?:developer|creator|admin(?:istrator)?|owner|programmer)\b"),
        ("stop_being_ai", 0.6, r"\b(?:stop being|no longer) (?:an? )?(?:ai|assistant|chatbot)\b"),
        ("evil_ai", 0.6, r"\b(?:evil|malicious|unethical|amoral)\s+(?:ai|assistant|bot|model|chatbot)\b"),
        ("decode_and_follow", 0.5,
         rf"\bdecode\b{_S}{{0,30}}\b(?:follow|execute|obey|do what it says|run)\b"),
        # Korean
        ("ko.ignore_previous", 0.9,
         rf"(?:이전|앞|위|앞서|기존|지금까지|원래|모든|시스템){_S}{{0,12}}?"
         rf"(?:지시|지침|명령|규칙|프롬프트|설정|제약|가이드|지령){_S}{{0,12}}?"
         r"(?:무시|잊어|잊고|따르지\s*마|따르지\s*말|무효|신경\s*쓰지\s*마|버려)"),
        ("ko.ignore_rules", 0.6,
         r"(?:지시|지침|명령|규칙|제약|가이드라인)[^.!?\n]{0,6}(?:무시해|무시하고|무시하라|무시할 것)"),
        ("ko.reveal_prompt", 0.85,
         rf"(?:시스템|초기|숨겨진|내부|원래|비밀)\s*(?:프롬프트|지시|지침|메시지|설정|명령){_S}{{0,15}}?"
         r"(?:보여|알려|출력|공개|말해|읊어|누설|복사|적어|그대로)"),
        ("ko.persona_jailbreak", 0.9,
         rf"(?:너는|넌|당신은)\s*(?:이제|지금부터)?{_S}{{0,15}}?"
         r"(?:dan|제한이?\s*없는|필터가?\s*없는|탈옥|무엇이든 할 수 있)"),
        ("ko.jailbreak_mode", 0.8, r"(?:dan|탈옥)\s*모드|탈옥해"),
        ("ko.no_restrictions", 0.5,
         r"제한(?:이|을)?\s*(?:없는|해제|풀)|필터\s*(?:없이|를?\s*(?:해제|우회|끄))"),
        ("ko.bypass_safety", 0.8,
         r"(?:안전|보안|콘텐츠)?\s*(?:정책|필터|규칙|가이드라인)을?\s*(?:우회|무력화|해제)"),
        ("ko.dont_care_rules", 0.5, r"규칙(?:은|따위는)?\s*신경\s*쓰지\s*마"),
        ("ko.obey_me", 0.6, r"(?:내|제)\s*(?:말|명령)만\s*(?:들어|따라)"),
        ("ko.from_now_on", 0.35, r"지금부터\s*(?:너는|넌)|이제부터\s*(?:너는|넌)"),
        ("ko.developer_mode", 0.4, r"개발자\s*모드"),
        ("ko.enable_developer_mode", 0.6, r"개발자\s*모드[^.!?\n]{0,6}(?:활성화|켜|진입|전환)"),
        ("ko.can_do_anything", 0.5, r"무엇이든 할 수 있"),
    )
)

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_WORD = re.compile(r"[a-z0-9@$]*[a-z][a-z0-9@$]*")
_SPACED = re.compile(r"(?<![a-z])(?:[a-z] ){3,}[a-z](?![a-z])")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")


@dataclass(frozen=True)
class Normalised:
    text: str
    # index in the original text of every character of `text`
    origin: list[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.origin[start], self.origin[end - 1] + 1


def normalise(text: str) -> Normalised:
    """Lower-cased, de-obfuscated text with a map back to the original's indices."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ord(ch) in _ZERO_WIDTH:
            continue
        # NFKC per character keeps the index map simple (full-width letters -> ASCII).
        for out in unicodedata.normalize("NFKC", ch).lower():
            chars.append(out)
            origin.append(i)
    flat = "".join(chars)
    # Leetspeak only inside tokens that mix letters and digits: plain numbers stay numbers.
    flat = _LEET_WORD.sub(lambda m: m.group().translate(_LEET) if any(c.isdigit() or c in "@$"
                                                                      for c in m.group())
                          else m.group(), flat)
    # "i g n o r e" -> "ignore": drop the single spaces inside letter-spaced words.
    keep = [True] * len(flat)
    for m in _SPACED.finditer(flat):
        for j in range(m.start() + 1, m.end(), 2):
            keep[j] = False
    return Normalised("".join(c for c, k in zip(flat, keep, strict=True) if k),
                      [o for o, k in zip(origin, keep, strict=True) if k])


def _scan(norm: str) -> list[tuple[str, float, int, int]]:
    hits = []
    for name, weight, pattern in RULES:
        m = pattern.search(norm)
        if m:
            hits.append((name, weight, m.start(), m.end()))
    return hits


def _decoded_blobs(text: str) -> list[tuple[int, int, str]]:
    """Base64 runs that decode to readable text (the payload of an obfuscated injection)."""
    out = []
    for m in _BASE64.finditer(text):
        blob = m.group()
        try:
            decoded = base64.b64decode(blob + "=" * (-len(blob) % 4), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if decoded and sum(c.isprintable() for c in decoded) / len(decoded) > 0.95:
            out.append((m.start(), m.end(), decoded))
    return out


def detect_injection(text: str) -> tuple[float, list[Finding]]:
    """The injection score in [0, 1] and one finding per rule that fired (spans in `text`)."""
    norm = normalise(text)
    findings: dict[str, Finding] = {}
    for name, weight, start, end in _scan(norm.text):
        s, e = norm.span(start, end)
        findings[name] = Finding(s, e, PROMPT_INJECTION, weight, name)
    for start, end, decoded in _decoded_blobs(text):
        for name, weight, _, _ in _scan(normalise(decoded).text):
            key = f"base64.{name}"
            # A hidden payload is at least as suspicious as a plain one.
            if key not in findings or findings[key].score < weight:
                findings[key] = Finding(start, end, PROMPT_INJECTION, weight, key)
    remaining = 1.0
    for f in findings.values():
        remaining *= 1.0 - f.score
    return round(1.0 - remaining, 4), sorted(findings.values())
