"""Restore the written surface of text an uncased WordPiece decoder writes: case and spacing.

MiniLM's WordPiece vocabulary is lower-case and forgets where spaces were, so a decoder built on
it writes "prices in the u. s. rose 3. 2 %". Each word takes its most frequent form in the
training sentences ("U.S."), a sentence starts with a capital, and the spaces WordPiece puts
around abbreviations, numbers and brackets are closed. The case table ships beside the model.
"""
from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*", re.UNICODE)
CASING_FILE = "casing.json"
SPACING = [  # (pattern, replacement): spaces that detokenized WordPiece adds and English lacks
    (re.compile(r"(?<![^\W\d_])([^\W\d_])\. (?=[^\W\d_]\.)"), r"\1."),  # u. s. -> u.s.
    (re.compile(r"(\d)([.,:]) (?=\d)"), r"\1\2"),  # 3. 2 -> 3.2, 1, 000 -> 1,000
    (re.compile(r" (%|\)|\]|:|;)"), r"\1"),
    (re.compile(r"(\(|\[|\$|£|€) "), r"\1"),
    (re.compile(r"(?<=\w) ([-/–]) (?=\w)"), r"\1"),  # well - known -> well-known
    (re.compile(r"(?<=\w) ' (?=(s|d|ll|re|ve|m|t)\b)"), "'"),  # it ' s -> it's
]


class Truecaser:
    """Maps each lower-cased word to the form it most often took in the training text."""

    def __init__(self, forms: dict[str, str]):
        self.forms = forms

    @classmethod
    def fit(cls, sentences: Iterable[str], min_count: int = 1) -> "Truecaser":
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        for sentence in sentences:
            for index, match in enumerate(WORD.finditer(sentence)):
                if index == 0:  # a sentence's first word is capitalised whatever it is
                    continue
                word = match.group()
                counts[word.lower()][word] += 1
        forms = {}
        for lower, seen in counts.items():
            form, count = seen.most_common(1)[0]
            if form != lower and count >= min_count:
                forms[lower] = form  # only words that are not plainly lower-case are stored
        return cls(forms)

    def apply(self, text: str) -> str:
        for pattern, replacement in SPACING:
            text = pattern.sub(replacement, text)
        cased = WORD.sub(lambda m: self.forms.get(m.group().lower(), m.group()), text)
        return cased[:1].upper() + cased[1:]

    def save(self, directory: str | Path) -> None:
        Path(directory, CASING_FILE).write_text(json.dumps(self.forms, ensure_ascii=False,
                                                           sort_keys=True))

    @classmethod
    def load(cls, directory: str | Path) -> "Truecaser":
        path = Path(directory, CASING_FILE)
        return cls(json.loads(path.read_text()) if path.is_file() else {})
