"""Audio front end shared by speech encoders: read, downmix, resample, segment by silence.

    audio = load_audio("talk.flac")                 # mono float32 at 16 kHz
    for u in segment_by_silence(audio, SegmentConfig(max_utterance_s=15)):
        u.start_s, u.end_s, u.samples
"""
from .io import AUDIO_SUFFIXES, SAMPLE_RATE, Audio, find_audio_files, load_audio
from .segment import SegmentConfig, Utterance, segment_by_silence

__all__ = ["AUDIO_SUFFIXES", "SAMPLE_RATE", "Audio", "SegmentConfig", "Utterance",
           "find_audio_files", "load_audio", "segment_by_silence"]
