"""The ``encode_audio`` task: a folder of recordings → utterances → concept vectors → shards.

One document per recording, one concept per utterance (found by silence). Where the encoder
transcribes (``encode_recording``, e.g. whisper_cascade) the transcripts are the sentences and
utterances without words are counted in the manifest; otherwise each sentence slot holds a
readable placeholder with its times. ``meta`` keeps the file, its duration and each utterance's
start and end. Any speech encoder plugin works.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcm.data.shards import Document, Manifest, ShardWriter
from lcm.errors import InputFileError, UserError
from lcm.fields import ComponentSection, choice, component, path
from lcm.hookspecs import hookimpl
from lcm.interfaces import RunContext, Task
from lcm.plugins.audio.io import find_audio_files, load_audio
from lcm.plugins.audio.segment import segment_by_silence
from lcm.ui.words import format_counts

from .segment import SegmentConfig
from .spoken import RecordingEncoder, SpokenConcept, SpokenRecording


@dataclass
class EncodeAudioConfig:
    input: str = path(must_exist=True, help="an audio file, or a folder searched recursively")
    output: str = path(output="dir", help="directory for the shards and manifest")
    encoder: ComponentSection = component("encoder", default="sonar_speech")
    segmentation: SegmentConfig = field(default_factory=SegmentConfig)
    on_error: str = choice("fail", ("fail", "skip"),
                           help="a bad file stops the run (fail) or is skipped and counted (skip)")
    docs_per_shard: int = 1000


class EncodeAudio(Task):
    name = "encode_audio"
    description = "Split recordings into utterances at silences and encode each to a concept."
    Config = EncodeAudioConfig

    def run(self, recipe: EncodeAudioConfig, context: RunContext) -> Any:
        encoder = recipe.encoder.create()
        if "speech" not in encoder.modalities:
            raise UserError(f"encode_audio needs a speech encoder; {encoder.name!r} takes "
                            f"{', '.join(encoder.modalities)}")
        root = Path(recipe.input)
        files = find_audio_files(root)
        space = encoder.concept_space(encoder.config)
        with ShardWriter(recipe.output, space, encoder.name, recipe.docs_per_shard) as writer:
            for file in context.console.progress("encode_audio", len(files), "files").track(files):
                try:
                    if isinstance(encoder, RecordingEncoder):  # transcripts become the sentences
                        spoken = encoder.encode_recording(file, recipe.segmentation)
                    else:
                        spoken = _untranscribed(encoder, file, recipe.segmentation)
                except InputFileError as exc:
                    if recipe.on_error == "fail":
                        raise
                    context.console.status(f"skipped {exc}")  # the summary counts it
                    writer.skip(exc.reason.split(":")[0])
                    continue
                for reason, count in spoken.skipped.items():
                    writer.skip(reason, count)
                doc_id = file.relative_to(root).with_suffix("").as_posix() if root.is_dir() else file.stem
                writer.write(Document(
                    id=doc_id.replace(".", "_"),
                    sentences=spoken.transcripts,
                    vectors=spoken.vectors,
                    meta={"source": str(file), "modality": "speech",
                          "duration_s": round(spoken.duration_s, 3),
                          "utterances": [[c.start_s, c.end_s] for c in spoken.concepts],
                          "skipped_utterances": spoken.skipped}))
        manifest = Manifest.read(recipe.output)
        context.console.outcome(
            f"encoded {manifest.documents} of {len(files)} recording(s) into {manifest.sentences} "
            f"utterance concepts in {recipe.output} (skipped: "
            f"{format_counts(Counter(manifest.skipped))})",
            {"task": "encode_audio", "recordings": len(files), "written": manifest.documents,
             "utterances": manifest.sentences, "skipped": manifest.skipped,
             "output": recipe.output})
        return manifest


def _untranscribed(encoder: Any, file: Path, segmentation: SegmentConfig) -> SpokenRecording:
    """A recording encoded by a speech encoder that does not transcribe: each sentence slot
    holds a readable placeholder with the utterance's times."""
    audio = load_audio(file)
    utterances = segment_by_silence(audio, segmentation)
    vectors = encoder.encode(utterances).numpy()
    return SpokenRecording(str(file), audio.duration_s, [
        SpokenConcept(round(u.start_s, 3), round(u.end_s, 3),
                      f"[speech {u.start_s:.2f}-{u.end_s:.2f} s]", v)
        for u, v in zip(utterances, vectors)])


@hookimpl
def register_tasks(register) -> None:
    register(EncodeAudio)
