"""Encoder ``sonar_speech``: SONAR's speech encoders (one card per language, 1024-d).

Takes utterances (``lcm.plugins.audio.Utterance``), 1-D float arrays or tensors at 16 kHz, or
paths of audio files (read whole by the audio front end). Waveforms become the 80-bin
standardised filterbanks sonar's own pipeline computes, are batched by frame count, longest
first, and the vectors come back in input order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from lcm.fields import bounded
from lcm.hookspecs import hookimpl
from lcm.interfaces import ConceptSpace, Encoder
from lcm.plugins.audio.inputs import as_samples
from lcm.plugins.sonar import assets
from lcm.plugins.sonar.batching import length_sorted_batches, restore_order
from lcm.torch_options import torch_device, torch_dtype
from lcm.ui import progress

from ..sonar.options import SPACE_NAME, SonarModelOptions

MIN_SAMPLES = 1_600
"""0.1 s at 16 kHz: shorter input has (almost) no filterbank frames to pool."""


@dataclass
class SonarSpeechEncoderConfig(SonarModelOptions):
    card: str = "sonar_speech_encoder_eng"
    """fairseq2 asset card of the encoder; sonar-space ships one per language
    (sonar_speech_encoder_eng, ..._fra, ..._deu, ...)."""
    batch_size: int = bounded(16, ge=1)
    max_frames: int = bounded(60_000, ge=1)
    """Frame budget of one forward pass (rows × longest input; 100 frames per second)."""



class SonarSpeechEncoder(Encoder):
    name = "sonar_speech"
    description = "SONAR speech encoder (16 kHz speech → the SONAR text space)"
    modalities = ("speech",)
    Config = SonarSpeechEncoderConfig

    def __init__(self, config: SonarSpeechEncoderConfig | None = None):
        super().__init__(config)
        self._model: Any = None  # loaded on the first encode: listing plugins stays instant

    @classmethod
    def concept_space(cls, config: SonarSpeechEncoderConfig) -> ConceptSpace:
        return ConceptSpace(SPACE_NAME, config.dim)

    def load(self) -> "SonarSpeechEncoder":
        if self._model is None:
            # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
            from fairseq2.data.audio import WaveformToFbankConverter
            from sonar.models.sonar_speech import get_sonar_speech_encoder_hub

            cfg = self.config
            card = assets.resolve_card(cfg, needs_tokenizer=False)
            self._device, self._dtype = torch_device(cfg.device), torch_dtype(cfg.dtype)
            self._model = assets.load_model(get_sonar_speech_encoder_hub, card, self._device,
                                            self._dtype, lambda c: c.model_dim, cfg)
            # The settings of sonar's SpeechToEmbeddingModelPipeline.
            self._fbank = WaveformToFbankConverter(num_mel_bins=80, waveform_scale=2**15,
                                                   channel_last=True, standardize=True,
                                                   device=self._device, dtype=self._dtype)
        return self

    def encode(self, inputs: Sequence[Any]) -> Any:
        # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
        from fairseq2.nn.utils.padding import pad_seqs

        waveforms = [_waveform(x, i) for i, x in enumerate(inputs)]
        if not waveforms:
            return torch.empty(0, self.config.dim)
        self.load()
        feats = [self._fbank({"waveform": w.unsqueeze(1), "sample_rate": 16_000.0,
                              "format": -1})["fbank"] for w in waveforms]
        batches = length_sorted_batches([len(f) for f in feats], self.config.batch_size,
                                        self.config.max_frames)
        outputs = []
        with torch.inference_mode(), progress("sonar_speech", len(feats), "utterances",
                                              shown=len(batches) >= 20) as bar:
            for batch in batches:
                seqs, layout = pad_seqs([feats[i] for i in batch], pad_value=0, pad_to_multiple=2)
                outputs.append(self._model(seqs, layout).sentence_embeddings.float().cpu())
                bar.update(len(batch))
        return restore_order(batches, outputs)


def _waveform(item: Any, index: int) -> Any:
    """One input as a 1-D float32 tensor at 16 kHz."""
    return torch.from_numpy(as_samples(item, index, "sonar_speech", MIN_SAMPLES))


@hookimpl
def register_encoders(register) -> None:
    register(SonarSpeechEncoder)
