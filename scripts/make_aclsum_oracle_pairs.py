"""Build data/aclsum_train_oracle.jsonl: the aclsum TRAIN pairs with extractive targets.

Each pair keeps its source (``text``) and gets as ``summary`` the source sentences that say
what the abstract says: for each abstract sentence, the source sentence of highest ROUGE-L
against it (each source sentence once), in the abstract's order. Fine-tuned on these, a
summariser predicts the concepts of the source sentences worth keeping, which is what an
extractive decoding looks up. Only the train split is read (validation selects, test scores).

``--variants N`` adds N-1 more pairs per paper whose source keeps a random 70% of its sentences
(in order) and whose summary keeps the picks that survive: 100 papers are few, and a model that
has seen each paper's source in several cuts learns what to pick rather than where.

    .venv/bin/python scripts/make_aclsum_oracle_pairs.py
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from lcm.data.document_input import DocumentInput
from lcm.evaluate.text_metrics import rouge_l


def oracle(source: list[str], abstract: list[str]) -> list[str]:
    """Per abstract sentence, the best untaken source sentence by ROUGE-L."""
    taken: set[int] = set()
    picks = []
    for target in abstract:
        scores = [(rouge_l(s, target), i) for i, s in enumerate(source) if i not in taken]
        if not scores:
            break
        best = max(scores)[1]
        taken.add(best)
        picks.append(source[best])
    return picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, default=Path("data/aclsum_train.jsonl"))
    parser.add_argument("--output", type=Path, default=Path("data/aclsum_train_oracle.jsonl"))
    parser.add_argument("--variants", type=int, default=1)
    parser.add_argument("--keep", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    segment = DocumentInput().sentences
    rng = random.Random(args.seed)
    rows = [json.loads(line) for line in args.input.read_text(encoding="utf-8").splitlines()]
    lines = []
    for row in rows:
        source = segment(row["text"])
        picks = oracle(source, segment(row["summary"]))
        for variant in range(args.variants):
            kept = source if variant == 0 else [s for s in source if s in picks or rng.random() < args.keep]
            if variant:
                kept = [s for s in kept if s not in picks or rng.random() < args.keep]
            summary = [p for p in picks if p in kept]
            lines.append(json.dumps({**row, "id": f"{row['id']}#{variant}", "text": " ".join(kept),
                                     "summary": " ".join(summary)}, ensure_ascii=False))
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.output}: {len(lines)} pairs")


if __name__ == "__main__":
    main()
