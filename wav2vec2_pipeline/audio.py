"""Audio in: checked reads, the feature extractor's normalisation, and fitting to a static length."""

from pathlib import Path

import numpy as np
import soundfile as sf
from transformers import Wav2Vec2FeatureExtractor

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import SAMPLE_RATE


def audio_num_samples(path: Path) -> int:
    """Sample count from the file header, after checking it is 16 kHz mono (no decode needed)."""
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as error:
        raise PipelineError(f"cannot read {path}: {error}. Is it a valid FLAC file?") from error
    if info.samplerate != SAMPLE_RATE:
        raise PipelineError(
            f"{path} is sampled at {info.samplerate} Hz; the model needs {SAMPLE_RATE} Hz. "
            f"Resample it first, e.g. `sox in.flac -r {SAMPLE_RATE} out.flac`."
        )
    if info.channels != 1:
        raise PipelineError(f"{path} has {info.channels} channels; the model needs mono. Downmix it first.")
    return int(info.frames)


def read_audio(path: Path) -> np.ndarray:
    """The whole file as float32 in [-1, 1]."""
    audio_num_samples(path)
    try:
        audio, _ = sf.read(str(path), dtype="float32", always_2d=False)
    except sf.SoundFileError as error:
        raise PipelineError(f"cannot decode {path}: {error}. Is the file truncated or corrupt?") from error
    return audio


def normalize(audio: np.ndarray, feature_extractor: Wav2Vec2FeatureExtractor) -> np.ndarray:
    """What the model's feature extractor feeds it for one unpadded utterance (zero mean, unit var)."""
    features = feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
    return features.input_values[0].astype(np.float32, copy=False)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end, or cut, to exactly `length` samples."""
    fitted = np.zeros(length, dtype=np.float32)
    kept = min(length, audio.shape[0])
    fitted[:kept] = audio[:kept]
    return fitted
