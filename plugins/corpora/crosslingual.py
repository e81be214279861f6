"""Task ``crosslingual_retrieval``: does a space put the same article's lead in two languages
together? Each source document (a French lead) is a query over every target document (the
English leads) of the articles present in both files, matched by their ``article`` field
(``wiki_corpus`` writes it); top-1 is the share whose nearest target is its own article.

Whole leads are encoded as one text each (the encoder windows long ones). Scored by cosine as
encoded and again after centring both sides on their own mean, since an anisotropic space (E5's:
unrelated pairs sit near cosine 0.75) lets a common direction crowd the ranking.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lcm.errors import InputFileError
from lcm.fields import ComponentSection, bounded, component, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import RunContext, Task
from lcm.outputs import write_text_atomically


@dataclass
class CrosslingualRetrievalConfig:
    source: str = path(must_exist=True, help="JSONL of queries: {article, title, text}")
    target: str = path(must_exist=True, help="JSONL searched: {article, title, text}")
    output: str = path(output=True, help="JSON report: top-1 raw and centred, examples")
    encoder: ComponentSection = component("encoder", default="e5_multilingual")
    examples: int = bounded(5, ge=0, help="queries printed verbatim beside the figures")


class CrosslingualRetrieval(Task):
    name = "crosslingual_retrieval"
    description = "Top-1 retrieval of the same article across languages (e.g. French lead -> English)."
    Config = CrosslingualRetrievalConfig

    def run(self, recipe: CrosslingualRetrievalConfig, context: RunContext) -> dict[str, Any]:
        import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

        source, target = _rows(Path(recipe.source)), _rows(Path(recipe.target))
        shared = sorted(set(source) & set(target))
        if not shared:
            raise InputFileError(Path(recipe.source), f"no `article` in common with {recipe.target}")
        encoder = recipe.encoder.create()
        with context.console.progress("crosslingual_retrieval", 2, "sides") as progress:
            queries = encoder.encode([source[a]["text"] for a in shared]).float()
            progress.update(1)
            keys = encoder.encode([target[a]["text"] for a in shared]).float()
            progress.update(1)
        truth = torch.arange(len(shared))
        raw = _nearest(queries, keys)
        centred = _nearest(queries - queries.mean(0), keys - keys.mean(0))
        report = {
            "task": "crosslingual_retrieval", "pairs": len(shared),
            "only_in_source": len(source) - len(shared), "only_in_target": len(target) - len(shared),
            "top1": round(float((raw == truth).float().mean()), 4),
            "top1_centred": round(float((centred == truth).float().mean()), 4),
            "examples": [{"query": source[shared[i]]["title"],
                          "found": target[shared[int(centred[i])]]["title"],
                          "expected": target[shared[i]]["title"],
                          "query_text": source[shared[i]]["text"][:160],
                          "found_text": target[shared[int(centred[i])]]["text"][:160]}
                         for i in _spread(len(shared), recipe.examples)],
            "source": recipe.source, "target": recipe.target,
        }
        write_text_atomically(Path(recipe.output),
                              json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        for example in report["examples"]:
            context.console.note(f"{example['query']!r} -> {example['found']!r} "
                                 f"(expected {example['expected']!r})", key="example")
        context.console.outcome(
            f"top-1 {report['top1']:.3f} as encoded, {report['top1_centred']:.3f} centred, over "
            f"{len(shared)} articles in both files; wrote {recipe.output}", report)
        return report


def _rows(jsonl: Path) -> dict[str, dict[str, Any]]:
    """The file's rows by ``article`` (the first of any repeated one)."""
    rows: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(jsonl, f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or not row.get("article") or not row.get("text"):
            raise InputFileError(jsonl, f"line {number}: needs `article` and `text` "
                                        f"(write the file with the wiki_corpus task)")
        rows.setdefault(str(row["article"]), row)
    return rows


def _nearest(queries: Any, keys: Any) -> Any:
    """Index of each query's nearest key by cosine."""
    import torch  # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast

    q = torch.nn.functional.normalize(queries, dim=-1)
    k = torch.nn.functional.normalize(keys, dim=-1)
    return (q @ k.T).argmax(dim=-1)


def _spread(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)``."""
    return sorted({i * n // count for i in range(count)}) if count and n else []


@hookimpl
def register_tasks(register: Any) -> None:
    register(CrosslingualRetrieval)
