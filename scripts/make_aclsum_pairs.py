"""Build data/aclsum_{train,validation,test}.jsonl: document/summary pairs for summarisation.

The source is the `aclsum` package (ACL papers split into train 100 / val 50 / test 100 by its
authors), which ships dataset/{train,val,test}.jsonl with each paper's sentences by section.
Its Python package imports a library it does not declare (sienna), so the files are located
with importlib's finder, which does not execute the package.

Each pair (one JSON object per line: ``id``, ``title``, ``text``, ``summary``):
  * ``text`` (the source): the paper's introduction, then its conclusion. At most
    ``--max-introduction`` introduction sentences and ``--max-conclusion`` conclusion sentences
    are kept (the first ones), so a source holds at most 44 sentences by default;
  * ``summary`` (the target): the paper's abstract.
aclsum's sentences are tokenised ("models ( Zelle , 2007 ) ."); they are detokenised and their
parenthesised citations dropped as scripts/make_recording.py does for the shipped recording.

The test split stays held out of training: the summariser is fine-tuned on train, its head and
step count are chosen on validation, and test is scored once. The shipped recording
(data/audio/aclsum_P17-1143_intro.flac) reads a test paper; this script checks that no test
paper, P17-1143 included, is in the train or validation files.

    .venv/bin/pip install --no-deps aclsum==0.1.2
    .venv/bin/python scripts/make_aclsum_pairs.py
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from make_recording import PAPER, detokenize, test_split

SPLITS = {"train": "train", "validation": "val", "test": "test"}
"""Our split name -> aclsum's file stem."""


def pairs(split_file: Path, max_introduction: int, max_conclusion: int) -> list[dict[str, str]]:
    """The pairs of one aclsum split file, in its order."""
    out = []
    for line in split_file.read_text(encoding="utf-8").splitlines():
        paper = json.loads(line)
        sections = paper["sentences"]
        source = sections["introduction"][:max_introduction] + sections["conclusion"][:max_conclusion]
        out.append({"id": paper["id"], "title": paper.get("title", ""),
                    "text": join(source), "summary": join(sections["abstract"])})
    return out


def join(sentences: list[str]) -> str:
    return " ".join(t for t in (detokenize(s) for s in sentences) if t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("data"))
    parser.add_argument("--max-introduction", type=int, default=32)
    parser.add_argument("--max-conclusion", type=int, default=12)
    args = parser.parse_args()

    dataset = test_split().parent
    written = {}
    for name, stem in SPLITS.items():
        written[name] = pairs(dataset / f"{stem}.jsonl", args.max_introduction, args.max_conclusion)
    held_out = {p["id"] for p in written["test"]}
    if PAPER not in held_out:
        sys.exit(f"the recording's paper {PAPER} is not in aclsum's test split")
    for name in ("train", "validation"):
        leaked = held_out & {p["id"] for p in written[name]}
        if leaked:
            sys.exit(f"test paper(s) {sorted(leaked)} also in {name}: refusing to write")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in written.items():
        output = args.output_dir / f"aclsum_{name}.jsonl"
        output.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                          encoding="utf-8")
        print(f"{output}: {len(rows)} pairs, {output.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
