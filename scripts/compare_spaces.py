"""Held-out comparison of decoders of the MiniLM space and of learned spaces, and their curves.

    python scripts/compare_spaces.py --decoder models/decoder_minilm \
        --decoder runs/space_minilm/decoder_continued --space runs/space_minilm/model \
        --curve "decoder continued=runs/space_minilm/decoder_continued_training" \
        --curve "space=runs/space_minilm/training" --plot docs/space_curves.png

Each system decodes greedily (one candidate) the first sentences of the held-out Wikipedia
documents and of the aclsum test papers (out of domain) at noise 0 and 1.0; the scores are
BLEU, exact match, the share of numbers and names kept, and the round-trip cosine measured by
MiniLM against MiniLM's vector of the source, so every system is scored alike (a learned space
also in its own space, with its anchor cosine). Five outputs per set are printed verbatim.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def held_out_sets(limit: int) -> dict[str, list[str]]:
    from benchmarks.bench_decoder import document_sentences

    return {"wiki held-out": document_sentences(REPO / "data" / "wiki_heldout.jsonl", "text", 99,
                                                limit),
            "aclsum test": document_sentences(REPO / "data" / "aclsum_test.jsonl", "text", 2,
                                              limit)}


def score(texts: list[str], sentences: list[str], minilm, clean) -> dict[str, float]:
    from lcm.plugins.learned.evaluation import round_trip_cosines, text_scores
    from lcm.plugins.learned.space.evaluation import facts_kept

    return {**text_scores(texts, sentences), "facts_kept": facts_kept(texts, sentences),
            "minilm_round_trip": float(round_trip_cosines(minilm, texts, clean).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", action="append", default=[], help="learned decoder of minilm")
    parser.add_argument("--space", action="append", default=[], help="space folder (train_space)")
    parser.add_argument("--curve", action="append", default=[], help="NAME=TRAINING_DIR")
    parser.add_argument("--plot", help="PNG of the held-out curves")
    parser.add_argument("--sentences", type=int, default=100)
    args = parser.parse_args()

    import torch

    from lcm.components import component_options
    from lcm.plugins.encoders.minilm import MiniLMEncoder
    from lcm.plugins.learned.decoder import LearnedDecoder
    from lcm.plugins.learned.evaluation import noised
    from lcm.plugins.learned.space.encoder import LearnedEncoder

    torch.set_num_threads(1)
    minilm = MiniLMEncoder(component_options(MiniLMEncoder, {"device": "cpu"}))
    rows = []
    for set_name, sentences in held_out_sets(args.sentences).items():
        clean = minilm.encode(sentences).float()
        systems = [(folder, minilm, clean) for folder in args.decoder]
        for folder in args.space:
            own = LearnedEncoder(component_options(LearnedEncoder, {"model": folder}))
            systems.append((folder, own, own.encode(sentences).float()))
        for folder, encoder, vectors in systems:
            decoder = LearnedDecoder(component_options(LearnedDecoder, {
                "model": folder, "candidates": 1, "beam_size": 1}))
            for level in (0.0, 1.0):
                texts = decoder.decode(noised(vectors, level))
                row = {"set": set_name, "system": folder, "noise": level,
                       **score(texts, sentences, minilm, clean)}
                if encoder is not minilm:
                    row["own_round_trip"] = float(torch.nn.functional.cosine_similarity(
                        encoder.encode(texts), vectors).mean())
                    row["anchor_cosine"] = float(torch.nn.functional.cosine_similarity(
                        vectors, clean).mean())
                rows.append(row)
                print(json.dumps(row))
                if level == 0.0:
                    for source, text in list(zip(sentences, texts))[:5]:
                        print(f"  source:  {source}\n  decoded: {text}")
    if args.plot:
        plot_curves(dict(c.split("=", 1) for c in args.curve), Path(args.plot))


def plot_curves(runs: dict[str, str], path: Path) -> None:
    """Held-out token NLL, BLEU and round-trip cosine against training minutes, one line per
    run (the NLL, teacher-forced, is the smoothest of the three)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lcm.plugins.learned.curve import read_curve
    from lcm.train.log import read_log, save_figure

    panels = (("nll_per_token", "held-out NLL (nats/token)"), ("bleu", "held-out greedy BLEU"),
              ("round_trip_cosine", "held-out round-trip cosine (own space)"))
    figure, axes = plt.subplots(1, len(panels), figsize=(15, 4))
    for name, training in runs.items():
        curve = read_curve(Path(training) / "logs" / "heldout.csv")
        log = read_log(Path(training) / "logs" / "train_log.csv")
        seconds = {int(r["step"]): r["elapsed_s"] for r in log}
        x = [seconds.get(int(r["step"]), float("nan")) / 60 for r in curve]
        for axis, (column, _) in zip(axes, panels):
            axis.plot(x, [r[column] for r in curve], marker=".", label=name)
    for axis, (_, label) in zip(axes, panels):
        axis.set(xlabel="training minutes (one CPU thread)", ylabel=label)
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path)


if __name__ == "__main__":
    main()
