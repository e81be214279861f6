"""Tiny random-weight SONAR models, built by sonar's own factories and saved like real ones.

Each model starts from the real architecture sonar registers (``basic`` text encoder/decoder,
``english`` speech encoder) with a handful of fields shrunk; the same override mapping goes
into the asset cards and the recipes' ``model_config``, so the plugins load the files exactly as
a user's checkpoint is loaded. The tokenizer is a SentencePiece model trained here in a few
milliseconds with the NLLB conventions (language tokens, <pad> inserted at 0).
"""
from __future__ import annotations

import dataclasses
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

DIM = 32
LANGS_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "El rápido zorro marrón salta sobre el perro perezoso.",
    "Concepts are sentences; a model predicts the next one.",
    "Speech and text share one embedding space in SONAR.",
]
TEXT_ENCODER_OVERRIDES: dict[str, Any] = {
    "model_dim": DIM, "max_seq_len": 64, "num_encoder_layers": 2, "num_decoder_layers": 1,
    "num_encoder_attn_heads": 4, "num_decoder_attn_heads": 4, "ffn_inner_dim": 64,
    "_from_fairseq": False,
}
TEXT_DECODER_OVERRIDES: dict[str, Any] = {
    "model_dim": DIM, "max_seq_len": 64, "num_encoder_layers": 1, "num_decoder_layers": 2,
    "num_encoder_attn_heads": 4, "num_decoder_attn_heads": 4, "ffn_inner_dim": 64,
}
SPEECH_ENCODER_OVERRIDES: dict[str, Any] = {
    "model_dim": DIM, "num_decoder_layers": 1, "num_decoder_attn_heads": 4, "ffn_inner_dim": 64,
    "w2v2_encoder_config": {"model_dim": DIM, "num_encoder_layers": 2, "num_encoder_attn_heads": 4,
                            "ffn_inner_dim": 64, "depthwise_conv_kernel_size": 7},
}


@dataclass
class SonarAssets:
    """Everything the SONAR tests load: files on disk, and the in-memory originals."""

    root: Path
    tokenizer_path: Path
    text_encoder_path: Path
    text_decoder_path: Path
    speech_encoder_path: Path
    cards_dir: Path
    tokenizer: Any
    text_encoder: Any
    text_decoder: Any
    speech_encoder: Any
    vocab: dict[str, int]

    def local_options(self, kind: str) -> dict[str, Any]:
        """Recipe options naming the files directly (way 2: checkpoint + tokenizer)."""
        if kind == "speech":
            return {"checkpoint": str(self.speech_encoder_path), "dim": DIM,
                    "model_config": SPEECH_ENCODER_OVERRIDES, "device": "cpu"}
        path, overrides = ((self.text_encoder_path, TEXT_ENCODER_OVERRIDES) if kind == "encoder"
                           else (self.text_decoder_path, TEXT_DECODER_OVERRIDES))
        return {"checkpoint": str(path), "tokenizer": str(self.tokenizer_path), "dim": DIM,
                "model_config": {**overrides, "vocab_info": self.vocab}, "device": "cpu"}

    def card_options(self, kind: str) -> dict[str, Any]:
        """Recipe options naming a card in a folder of cards (way 3)."""
        return {"card": f"tiny_{kind}", "cards_dir": str(self.cards_dir), "dim": DIM, "device": "cpu"}


def train_tokenizer(directory: Path) -> Path:
    import sentencepiece as spm

    corpus = directory / "corpus.txt"
    corpus.write_text("\n".join(LANGS_CORPUS * 20), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(directory / "spm"), vocab_size=200,
        hard_vocab_limit=False, pad_id=-1, unk_id=0, bos_id=1, eos_id=2, minloglevel=2)
    return directory / "spm.model"


def _replace(config: Any, overrides: dict[str, Any]) -> Any:
    """``config`` with ``overrides`` applied, recursing into nested config dataclasses."""
    changes = {k: _replace(getattr(config, k), v) if isinstance(v, dict) else v
               for k, v in overrides.items()}
    return dataclasses.replace(config, **changes)


def build_assets(root: Path) -> SonarAssets:
    import torch
    from fairseq2.data.tokenizers import VocabularyInfo
    from fairseq2.models.nllb.tokenizer import NllbTokenizerConfig, load_nllb_tokenizer
    from sonar.models.sonar_speech import get_sonar_speech_encoder_hub
    from sonar.models.sonar_speech.factory import _create_sonar_speech_encoder_model
    from sonar.models.sonar_text import get_sonar_text_decoder_hub, get_sonar_text_encoder_hub
    from sonar.models.sonar_text.factory import (_create_sonar_text_decoder_model,
                                                 _create_sonar_text_encoder_model)

    from lcm.plugins.sonar.languages import nllb_languages

    root.mkdir(parents=True, exist_ok=True)
    tokenizer_path = train_tokenizer(root)
    tokenizer = load_nllb_tokenizer(tokenizer_path, NllbTokenizerConfig(
        langs=list(nllb_languages()), default_lang="eng_Latn"))
    info = tokenizer.vocab_info
    vocab = {"size": info.size, "unk_idx": info.unk_idx, "bos_idx": info.bos_idx,
             "eos_idx": info.eos_idx, "pad_idx": info.pad_idx}
    vocab_info = VocabularyInfo(**vocab)

    torch.manual_seed(0)
    enc_cfg = _replace(get_sonar_text_encoder_hub().get_arch_config("basic"),
                       {**TEXT_ENCODER_OVERRIDES, "vocab_info": vocab_info})
    dec_cfg = _replace(get_sonar_text_decoder_hub().get_arch_config("basic"),
                       {**TEXT_DECODER_OVERRIDES, "vocab_info": vocab_info})
    sp_cfg = _replace(get_sonar_speech_encoder_hub().get_arch_config("english"),
                      SPEECH_ENCODER_OVERRIDES)
    text_encoder = _create_sonar_text_encoder_model(enc_cfg).eval()
    text_decoder = _create_sonar_text_decoder_model(dec_cfg).eval()
    speech_encoder = _create_sonar_speech_encoder_model(sp_cfg).eval()
    paths = {}
    for name, model in (("text_encoder", text_encoder), ("text_decoder", text_decoder),
                        ("speech_encoder", speech_encoder)):
        paths[name] = root / f"{name}.pt"
        torch.save(model.state_dict(), paths[name])

    cards_dir = root / "cards"
    cards_dir.mkdir(exist_ok=True)
    cards = [
        {"name": "tiny_encoder", "base": "text_sonar_basic_encoder",
         "checkpoint": paths["text_encoder"].name, "tokenizer": f"../{tokenizer_path.name}",
         "model_config": {**TEXT_ENCODER_OVERRIDES, "vocab_info": vocab}},
        {"name": "tiny_decoder", "base": "text_sonar_basic_decoder",
         "checkpoint": paths["text_decoder"].as_uri(), "tokenizer": tokenizer_path.as_uri(),
         "model_config": {**TEXT_DECODER_OVERRIDES, "vocab_info": vocab}},
        {"name": "tiny_speech", "base": "sonar_speech_encoder_eng",
         "checkpoint": paths["speech_encoder"].as_uri(), "model_config": SPEECH_ENCODER_OVERRIDES},
    ]
    # Relative paths in a card resolve against the card file's folder: keep the encoder's
    # checkpoint beside the card to exercise that too.
    shutil.copy(paths["text_encoder"], cards_dir / paths["text_encoder"].name)
    (cards_dir / "tiny.yaml").write_text(yaml.safe_dump_all(cards, sort_keys=False))
    return SonarAssets(root, tokenizer_path, paths["text_encoder"], paths["text_decoder"],
                       paths["speech_encoder"], cards_dir, tokenizer, text_encoder, text_decoder,
                       speech_encoder, vocab)


# --------------------------------------------------------------------------- speech

def espeak(text: str, path: Path) -> Path:
    """Synthesise ``text`` to a WAV with espeak-ng (22.05 kHz mono)."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    return path


def speech_recording(directory: Path, sentences: list[str], pause_s: float = 0.8,
                     name: str = "recording.wav") -> tuple[Path, list[tuple[float, float]]]:
    """Sentences spoken one after another with ``pause_s`` of silence between them; returns the
    WAV path and where each sentence lies (seconds)."""
    import soundfile as sf

    parts, spans, cursor, rate = [], [], 0.0, None
    for i, sentence in enumerate(sentences):
        samples, rate = sf.read(espeak(sentence, directory / f"_part{i}.wav"), dtype="float32")
        silence = np.zeros(int(pause_s * rate), dtype=np.float32)
        parts += [silence, samples]
        start = cursor + pause_s
        spans.append((start, start + len(samples) / rate))
        cursor = spans[-1][1]
    parts.append(np.zeros(int(pause_s * rate), dtype=np.float32))
    path = directory / name
    sf.write(path, np.concatenate(parts), rate)
    return path, spans
