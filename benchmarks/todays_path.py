"""The headline path as it was before the latency work, kept as the benchmarks' baseline.

``todays_path()`` swaps it in for a block: the learned decoder samples through transformers'
``generate`` (the batch expanded to every candidate before the prefix is read, finished rows kept
to the end, the vocabulary sorted for top-p at every step, fp32), and every minilm encoder loads
its own copy of the weights.
The functions are the former code, verbatim, so a row's baseline is what a user ran.

    python -m benchmarks.todays_path run recipes/speech_summarize.yaml   # lcm, the old path
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator


def _no_grad(function: Any) -> Any:
    import torch

    return torch.no_grad()(function)


@_no_grad
def transformers_generate(self: Any, vectors: Any, candidates: int = 1, beam_size: int = 4,
                          sample: bool = False, top_p: float = 0.9, temperature: float = 1.0,
                          no_repeat_ngram: int = 3, seed: int | None = None,
                          bf16: bool = False) -> list[list[str]]:
    """``ConceptDecoderModel.generate`` before: everything through transformers' ``generate``, in
    fp32 (``bf16`` is ignored: the option is new)."""
    import torch

    batch = vectors.shape[0]
    cls_ids = torch.full((batch, 1), self.tokenizer.cls_token_id, dtype=torch.long,
                         device=vectors.device)
    embeds, mask = self._inputs(vectors, cls_ids, torch.ones_like(cls_ids))
    options: dict[str, Any] = dict(
        max_new_tokens=self.arch.max_tokens + 1, num_return_sequences=candidates,
        eos_token_id=self.tokenizer.sep_token_id, pad_token_id=self.tokenizer.pad_token_id,
        no_repeat_ngram_size=no_repeat_ngram or 0)
    if sample:
        if seed is not None:
            torch.manual_seed(seed)
        options.update(do_sample=True, top_p=top_p, temperature=temperature, num_beams=1)
    else:
        options.update(do_sample=False, num_beams=max(beam_size, candidates))
    ids = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, **options)
    texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True,
                                        clean_up_tokenization_spaces=True)
    return [texts[i * candidates:(i + 1) * candidates] for i in range(batch)]


@contextlib.contextmanager
def todays_path() -> Iterator[None]:
    """The old decoding, and MiniLM loaded afresh by every encoder that uses it, for the block."""
    from lcm.plugins.encoders import minilm
    from lcm.plugins.learned.model import ConceptDecoderModel

    swaps = [(ConceptDecoderModel, "generate", transformers_generate),
             (minilm, "load_model", minilm.load_model.__wrapped__)]
    saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in swaps]
    for owner, name, old in swaps:
        setattr(owner, name, old)
    try:
        yield
    finally:
        for owner, name, new in saved:
            setattr(owner, name, new)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from lcm.cli import main

    with todays_path():
        sys.exit(main(sys.argv[1:]))
