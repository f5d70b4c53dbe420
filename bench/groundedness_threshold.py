"""Picks the groundedness threshold: answer sentences grounded in samples/corpus vs unrelated ones.

The corpus is cut into its sections (about what ingestion's chunks hold). For each question
the top 4 sections by cosine to the question stand in for the retrieved passages; the best one
is the cited passage. Three kinds of answer sentence are scored with the shipped embedding model
(all-MiniLM-L6-v2, the one the embedding service serves), as inference does: best cosine of the
sentence (citation markers removed) to the passages:

- grounded: a paraphrase of what the cited section says (English and Korean);
- unrelated: a sentence about something else entirely (what a model that ignores its context
  produces), scored against the same question's passages;
- confabulated: on topic but false (a wrong number or a made-up rule), to show what a
  similarity threshold cannot catch.

It prints each kind's similarity distribution, and for thresholds 0.30..0.70 the share of
grounded sentences counted as supported and of unrelated ones counted as unsupported; the
threshold with the best balanced accuracy is the suggestion.

    uv run python bench/groundedness_threshold.py [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

from llmops_embedding.settings import EncoderSettings
from llmops_inference.domain.groundedness import best_similarities, split_sentences

CORPUS = Path(__file__).resolve().parents[1] / "samples" / "corpus"

# (question, grounded answer sentence, confabulated answer sentence)
SAMPLES = [
    ("How many days of paid vacation does a full-time employee get?",
     "Full-time employees get 25 days of paid vacation each calendar year [1].",
     "Full-time employees get 40 days of paid vacation and a sabbatical every year."),
    ("How many unused vacation days can be carried over?",
     "You can carry up to 5 unused vacation days into the next year; they expire on March 31.",
     "All unused vacation days carry over forever and are paid out when you leave."),
    ("How do I request time off?",
     "Request time off in the HR portal at least two weeks ahead for absences over three days.",
     "Send your manager a text message the day before you want to be off."),
    ("How long is parental leave?",
     "Parental leave is 20 weeks at full pay for every parent [1].",
     "Parental leave is three days unpaid for the second parent."),
    ("When is a doctor's note needed for sick leave?",
     "From the fourth consecutive sick day you need a doctor's note.",
     "A doctor's note is needed from the first hour of any absence."),
    ("What is the daily meal allowance on business trips?",
     "The meal allowance is 75 euros a day in Europe and 90 US dollars in North America.",
     "The meal allowance is 300 euros a day anywhere in the world, alcohol included."),
    ("When do I have to submit receipts?",
     "Submit your receipts in the expense tool within 30 days of the trip [2].",
     "Receipts can be submitted at any time within five years."),
    ("Which flight class may I book?",
     "Economy is the default under six hours; premium economy is allowed for longer flights.",
     "Everyone flies business class on every flight."),
    ("My laptop was stolen, who do I tell?",
     "Report a stolen laptop to the security team within one hour so it can be wiped remotely.",
     "A stolen laptop should be reported to the local police within a month only."),
    ("How long must passwords be?",
     "Passwords must be at least 14 characters long and unique for each service.",
     "Passwords may be four digits and shared between services."),
    ("Where do I report a security incident?",
     "Report suspected incidents in the #security-incident channel; on-call answers in 15 minutes.",
     "Security incidents are reported by fax to the facilities team."),
    ("Which regions is Orbit available in?",
     "Orbit runs in Frankfurt and Virginia, and data stays in the region you chose.",
     "Orbit runs in twelve regions and moves data between them freely."),
    ("How long are raw events retained?",
     "Raw events are kept for 13 months on Starter and Growth and up to 7 years on Enterprise.",
     "Raw events are deleted after one week on every plan."),
    ("How do I export data from Orbit?",
     "Use the export API or a scheduled export to S3-compatible storage as daily Parquet files.",
     "Data can only be exported by printing each dashboard."),
    ("첫날 몇 시까지 어디로 가야 하나요?",
     "입사 첫날 오전 9시 30분까지 본사 3층 안내 데스크로 가면 됩니다.",
     "입사 첫날 오후 6시까지 지하 주차장으로 가면 됩니다."),
    ("재택 근무는 얼마나 할 수 있나요?",
     "재택 근무는 주 2회까지 가능하며 팀 캘린더에 미리 등록해야 합니다.",
     "재택 근무는 매일 가능하며 아무 등록도 필요 없습니다."),
    ("자기계발 지원금은 얼마인가요?",
     "모든 직원은 연간 100만 원의 자기계발 지원금을 받습니다.",
     "모든 직원은 매달 500만 원의 자기계발 지원금을 받습니다."),
    ("핵심 근무 시간은 언제인가요?",
     "핵심 근무 시간은 오전 10시부터 오후 4시까지입니다.",
     "핵심 근무 시간은 밤 10시부터 새벽 4시까지입니다."),
]

UNRELATED = [
    "The Eiffel Tower is about 330 metres tall and was finished in 1889.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar and oxygen.",
    "The recipe needs two cups of flour, three eggs and a pinch of salt.",
    "Jupiter is the largest planet in the solar system.",
    "The football match ended in a draw after extra time.",
    "I am a large language model and I enjoy helping with questions.",
    "Mozart composed his first symphony when he was eight years old.",
    "The stock market closed higher on Friday after a volatile week.",
    "Penguins live mostly in the Southern Hemisphere.",
    "Water boils at 100 degrees Celsius at sea level.",
    "The novel follows a detective solving a murder in Victorian London.",
    "Cats sleep for up to sixteen hours a day.",
    "서울은 대한민국의 수도이며 인구가 약 천만 명입니다.",
    "김치는 배추와 고춧가루로 만드는 전통 음식입니다.",
    "어제 저녁에는 친구들과 영화를 보았습니다.",
    "한강은 서울을 동서로 가로질러 흐릅니다.",
    "The capital of Australia is Canberra, not Sydney.",
    "Bananas are a good source of potassium.",
]


def sections() -> list[str]:
    """The corpus cut at its headings (Markdown ##, the FAQ's questions, the HTML's h2)."""
    out: list[str] = []
    for path in sorted(CORPUS.iterdir()):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.S)
            text = re.sub(r"<h2[^>]*>", "\n## ", text)
            text = re.sub(r"<[^>]+>", " ", text)
        if path.suffix == ".txt":
            text = re.sub(r"\n(?=[^\n]*\?\n)", "\n## ", text)
        out += [" ".join(s.split()) for s in re.split(r"\n#+ ", text) if len(s.split()) > 5]
    return out


def summary(values: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(values, n=10, method="inclusive")
    return {"n": len(values), "min": min(values), "p10": qs[0],
            "median": statistics.median(values), "p90": qs[-1], "max": max(values)}


def korean(text: str) -> bool:
    return re.search("[\uac00-\ud7a3]", text) is not None


def sweep(scores: dict[str, list[float]]) -> list[dict[str, float]]:
    """Per threshold: grounded counted supported, unrelated rejected, confabulated supported."""
    rows = []
    for t100 in range(10, 71, 5):
        t = t100 / 100
        tpr = sum(v >= t for v in scores["grounded"]) / len(scores["grounded"])
        tnr = sum(v < t for v in scores["unrelated"]) / len(scores["unrelated"])
        fake = sum(v >= t for v in scores["confabulated"]) / len(scores["confabulated"])
        rows.append({"threshold": t, "grounded_supported": tpr, "unrelated_rejected": tnr,
                     "confabulated_supported": fake, "balanced_accuracy": (tpr + tnr) / 2})
    return rows


def suggest(rows: list[dict[str, float]]) -> float:
    """The middle of the thresholds with the best balanced accuracy: the widest margin."""
    best = max(r["balanced_accuracy"] for r in rows)
    tied = [r["threshold"] for r in rows if r["balanced_accuracy"] == best]
    return round(tied[len(tied) // 2], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    enc = EncoderSettings()
    model = SentenceTransformer(str(enc.path), device="cpu")

    def embed(texts: list[str]) -> list[list[float]]:
        return model.encode(texts, normalize_embeddings=True).tolist()  # type: ignore[no-any-return]

    secs = sections()
    sec_vecs = embed(secs)
    # language -> kind -> best similarity of each sentence to the question's top 4 sections
    scores: dict[str, dict[str, list[float]]] = {
        lang: {"grounded": [], "unrelated": [], "confabulated": []} for lang in ("en", "ko")}
    for i, (question, grounded, confab) in enumerate(SAMPLES):
        qv = embed([question])[0]
        ranked = sorted(range(len(secs)), key=lambda j: -sum(
            a * b for a, b in zip(qv, sec_vecs[j], strict=True)))[:4]
        top4 = [sec_vecs[j] for j in ranked]
        for kind, text in (("grounded", grounded), ("confabulated", confab),
                           ("unrelated", UNRELATED[i % len(UNRELATED)])):
            lang = "ko" if korean(text) else "en"
            scores[lang][kind] += best_similarities(embed(split_sentences(text)), top4)
    rows = sweep(scores["en"])
    report = {
        "model": enc.name, "sections": len(secs), "questions": len(SAMPLES),
        "similarity": {lang: {k: summary(v) for k, v in d.items() if v}
                       for lang, d in scores.items()},
        "sweep_en": rows, "suggested_threshold": suggest(rows),
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    print(f"model {enc.name}, {len(secs)} corpus sections, {len(SAMPLES)} questions; best "
          "cosine of each answer sentence to the question's top 4 sections")
    for lang, d in scores.items():
        for kind, v in d.items():
            if v:
                s = summary(v)
                print(f"  {lang} {kind:>12} (n={len(v):>2}): min {s['min']:.2f} p10 {s['p10']:.2f}"
                      f" median {s['median']:.2f} p90 {s['p90']:.2f} max {s['max']:.2f}")
    print("English, threshold: grounded supported / unrelated rejected / confabulated supported")
    for r in rows:
        print(f"  {r['threshold']:.2f}: {r['grounded_supported']:.2f} / "
              f"{r['unrelated_rejected']:.2f} / {r['confabulated_supported']:.2f}")
    print(f"suggested threshold (middle of the best balanced accuracy): "
          f"{report['suggested_threshold']:.2f}")


if __name__ == "__main__":
    main()
