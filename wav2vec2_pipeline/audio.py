"""Audio in: checked reads, the feature extractor's normalisation, and fitting to a static length."""

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import SAMPLE_RATE

if TYPE_CHECKING:
    from transformers import Wav2Vec2FeatureExtractor

# libsndfile reports 2**63 - 1 frames for a FLAC whose header leaves the length out (sox writes such files).
IMPLAUSIBLE_SAMPLES = 2**62
# A FLAC frame holds at most 65536 samples and takes at least 8 bytes: no file holds more samples per byte.
MAX_SAMPLES_PER_BYTE = 65_536 // 8
DECODE_BLOCK_SAMPLES = 65_536
# STREAMINFO's 36-bit total-samples field: the low 4 bits of file byte 21, then bytes 22 to 25.
FLAC_TOTAL_SAMPLES_BYTES = range(21, 26)


class _FlacOfUnknownLength(io.FileIO):
    """The file as read with a FLAC header's total-samples field at 0 ("unknown"), so that libsndfile decodes
    every frame there is rather than stopping at, or failing past, the count that the header claims."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "r")
        head = self.read(5)
        self.seek(0)
        self._is_flac = head[:4] == b"fLaC" and len(head) == 5 and head[4] & 0x7F == 0  # STREAMINFO comes first

    def readinto(self, buffer: bytearray | memoryview) -> int:  # any writable buffer, as io.FileIO takes
        start = self.tell()
        count = super().readinto(buffer)
        if self._is_flac and count:
            view = memoryview(buffer).cast("B")
            for offset in FLAC_TOTAL_SAMPLES_BYTES:
                if start <= offset < start + count:
                    view[offset - start] &= 0xF0 if offset == FLAC_TOTAL_SAMPLES_BYTES[0] else 0x00
        return count


def _checked_header_samples(path: Path) -> int:
    """The header's sample count, after checking it is 16 kHz mono."""
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


def _header_is_plausible(path: Path, header_samples: int) -> bool:
    """Whether the header's count can be trusted without decoding; a 0 is checked, as FLAC uses it for unknown."""
    return 0 < header_samples < IMPLAUSIBLE_SAMPLES and header_samples <= path.stat().st_size * MAX_SAMPLES_PER_BYTE


def _decoded_blocks(path: Path, max_samples: int | None = None) -> Iterator[np.ndarray]:
    """The audio as float32 blocks, to its real end whatever the header says, or until past `max_samples`.

    It calls libsndfile's read itself: soundfile's read stops at the header's count, and seeks after each
    block, which fails where the header claims more samples than there are."""
    decoded = 0
    try:
        with _FlacOfUnknownLength(path) as raw, sf.SoundFile(raw) as sound:
            while max_samples is None or decoded <= max_samples:
                block = np.empty(DECODE_BLOCK_SAMPLES, dtype=np.float32)
                pointer = sf._ffi.cast("float *", block.__array_interface__["data"][0])
                count = sf._snd.sf_readf_float(sound._file, pointer, DECODE_BLOCK_SAMPLES)
                if code := sf._snd.sf_error(sound._file):
                    raise sf.LibsndfileError(code)
                if count == 0:
                    return
                decoded += count
                yield block[:count]
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}; check that it exists and is readable") from error
    except sf.SoundFileError as error:
        detail = error.error_string if isinstance(error, sf.LibsndfileError) else str(error)
        detail = detail.removeprefix("Error : ").rstrip(".")
        raise PipelineError(f"cannot decode {path}: {detail}. Is the file truncated or corrupt?") from error


def audio_num_samples(path: Path) -> int:
    """Sample count, after checking it is 16 kHz mono: from the header where that is plausible (no decode
    needed), else by decoding, since a wrong count would put the audio in the wrong rows."""
    header_samples = _checked_header_samples(path)
    if _header_is_plausible(path, header_samples):
        return header_samples
    return sum(block.shape[0] for block in _decoded_blocks(path))


def read_audio(path: Path, *, expected_samples: int | None = None) -> np.ndarray:
    """The whole file as float32 in [-1, 1]; it must decode to `expected_samples` (what the run was planned
    with), or by default to its header's count where that is plausible."""
    header_samples = _checked_header_samples(path)
    if expected_samples is None and _header_is_plausible(path, header_samples):
        expected_samples = header_samples
    blocks = list(_decoded_blocks(path, max_samples=expected_samples))
    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if expected_samples is not None and audio.shape[0] != expected_samples:
        decoded = f"more than {expected_samples}" if audio.shape[0] > expected_samples else str(audio.shape[0])
        raise PipelineError(
            f"{path} decodes to {decoded} samples, but {expected_samples} were expected (its header's count, or what "
            "the run was planned with): its header is wrong, or it changed. Re-encode it, e.g. `sox in.flac out.flac`."
        )
    return audio


def normalize(audio: np.ndarray, feature_extractor: "Wav2Vec2FeatureExtractor") -> np.ndarray:
    """What the model's feature extractor feeds it for one unpadded utterance (zero mean, unit var)."""
    features = feature_extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np")
    return features.input_values[0].astype(np.float32, copy=False)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end, or cut, to exactly `length` samples."""
    fitted = np.zeros(length, dtype=np.float32)
    kept = min(length, audio.shape[0])
    fitted[:kept] = audio[:kept]
    return fitted
