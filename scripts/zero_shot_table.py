"""The zero-shot table of docs/multilingual.md from the reports recipes/zero_shot_multilingual.yaml
writes, with the issue's goals checked (relative gaps of ℓ2 and CA):

    python scripts/zero_shot_table.py runs/zero_shot_multilingual

For each head: the English-trained model on English, French and Spanish held-out leads, the
French-trained model on French (the ceiling), and each report's mean-concept baseline; then
French zero-shot against English (goal: within 15%) and against the ceiling (goal: within 10%).
ℓ2 is measured in the encoder's space, where held-out sets of different languages sit at
different distances from everything; the last column (how much lower than the mean-concept
predictor's ℓ2 the model's is) compares the languages on the same footing.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

METRICS = ("l2", "ca", "ca_doc", "round_trip_cos")
RUNS = (("en", "en", "English-trained, English held-out"),
        ("en", "fr", "English-trained, French held-out (zero-shot)"),
        ("en", "es", "English-trained, Spanish held-out (zero-shot)"),
        ("fr", "fr", "French-trained, French held-out (ceiling)"))


def rows(report: dict) -> dict[str, dict[str, float]]:
    """{system: {metric: mean}} of one evaluate report."""
    return {row["system"]: {k: v["mean"] for k, v in row["metrics"].items()} for row in report["rows"]}


def gap(value: float, reference: float, higher_is_better: bool) -> float:
    """Relative shortfall of ``value`` against ``reference`` (positive = worse)."""
    return ((reference - value) if higher_is_better else (value - reference)) / abs(reference)


def main(workdir: Path) -> None:
    for head in ("mse", "two_tower"):
        reports = {(t, e): workdir / f"{head}_{t}_on_{e}.json" for t, e, _ in RUNS}
        if not all(p.is_file() for p in reports.values()):
            print(f"{head}: reports missing, skipped")
            continue
        scores = {key: rows(json.loads(p.read_text())) for key, p in reports.items()}
        print(f"\n#### {head}\n")
        print("| model, held-out set | n | ℓ2 ↓ | CA ↑ | CA-doc ↑ | cos-r ↑ | mean concept ℓ2 / CA "
              "| previous concept ℓ2 / CA | ℓ2 gain over mean concept |")
        print("|---|---|---|---|---|---|---|---|---|")
        for train, held, label in RUNS:
            table = scores[(train, held)]
            model = next(v for k, v in table.items() if k.startswith("model"))
            n = json.loads(reports[(train, held)].read_text())["rows"][0]["metrics"]["l2"]["n"]
            mean, previous = table["mean concept"], table["previous concept"]
            print(f"| {label} | {n} | " + " | ".join(f"{model[m]:.4f}" for m in METRICS)
                  + f" | {mean['l2']:.4f} / {mean['ca']:.4f} | "
                  f"{previous['l2']:.4f} / {previous['ca']:.4f} | {1 - model['l2'] / mean['l2']:+.1%} |")
        model = {key: next(v for k, v in t.items() if k.startswith("model")) for key, t in scores.items()}
        fr, en, ceiling = model[("en", "fr")], model[("en", "en")], model[("fr", "fr")]
        for name, higher in (("l2", False), ("ca", True)):
            to_en, to_ceiling = gap(fr[name], en[name], higher), gap(fr[name], ceiling[name], higher)
            print(f"\n{head} {name}: French zero-shot {to_en:+.1%} against English (positive = worse) "
                  f"({'met' if to_en <= 0.15 else 'missed'}: within 15%), {to_ceiling:+.1%} against "
                  f"the French-trained ceiling ({'met' if to_ceiling <= 0.10 else 'missed'}: within 10%)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/zero_shot_multilingual"))
