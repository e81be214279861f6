"""How task output records and describes a decoded sentence: generated or retrieved, and how
close its round trip came to the concept (shared by generate and summarize)."""
from __future__ import annotations

from typing import Any


def decoding_record(decoded: Any) -> dict[str, Any]:
    """What a decoded sentence's JSON says of how it was decoded."""
    record: dict[str, Any] = {"decoded": decoded.origin}
    if decoded.cosine is not None:
        record["round_trip"] = round(decoded.cosine, 4)
    if decoded.generated_cosine is not None:
        record["best_generated"] = round(decoded.generated_cosine, 4)
    return record


def describe_decoding(item: dict[str, Any]) -> str:
    """"generated (round trip 0.81)", or why a retrieved sentence won over generated ones."""
    text = item["decoded"]
    if "round_trip" in item:
        text += f" (round trip {item['round_trip']:.2f}"
        if "best_generated" in item:
            text += f"; best generated {item['best_generated']:.2f}"
        text += ")"
    return text
