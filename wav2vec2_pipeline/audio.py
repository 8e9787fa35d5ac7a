"""Audio in: checked reads, the feature extractor's normalisation, and fitting to a static length."""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import soxr

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


@dataclass(frozen=True)
class Conversion:
    """What may be done to audio that is not 16 kHz mono: nothing unless asked for (--resample, --downmix)."""

    resample: bool = False
    """Any sample rate to 16 kHz with soxr, high quality."""
    downmix: bool = False
    """Average the channels."""


NO_CONVERSION = Conversion()


@dataclass(frozen=True)
class Header:
    frames: int
    sample_rate: int
    channels: int


def _checked_header(path: Path, conversion: Conversion) -> Header:
    """The header, after checking that its rate and channels are 16 kHz mono or may be converted."""
    try:
        info = sf.info(str(path))
    except sf.SoundFileError as error:
        raise PipelineError(f"cannot read {path}: {error}. Is it a valid audio file?") from error
    if info.samplerate != SAMPLE_RATE and not conversion.resample:
        raise PipelineError(
            f"{path} is sampled at {info.samplerate} Hz; the model needs {SAMPLE_RATE} Hz. Pass --resample to "
            f"convert it (soxr, high quality), or resample it first, e.g. `sox in.flac -r {SAMPLE_RATE} out.flac`."
        )
    if info.channels != 1 and not conversion.downmix:
        raise PipelineError(
            f"{path} has {info.channels} channels; the model needs mono. Pass --downmix to average them, or "
            "downmix it first."
        )
    return Header(int(info.frames), info.samplerate, info.channels)


def resampled_length(frames: int, sample_rate: int) -> int:
    """How many 16 kHz samples soxr makes of `frames` at `sample_rate` (it rounds to the nearest)."""
    return (2 * frames * SAMPLE_RATE + sample_rate) // (2 * sample_rate)


def _header_is_plausible(path: Path, header: Header) -> bool:
    """Whether the header's count can be trusted without decoding; a 0 is checked, as FLAC uses it for unknown."""
    per_byte = MAX_SAMPLES_PER_BYTE // header.channels
    return 0 < header.frames < IMPLAUSIBLE_SAMPLES and header.frames <= path.stat().st_size * per_byte


def readf_float(sound: sf.SoundFile, block: np.ndarray) -> int:
    """libsndfile's `sf_readf_float` into `block` (frames x channels, float32, C order): the frames read, 0 at
    the end. The one place that uses soundfile's private names (`_ffi`, `_snd`, `SoundFile._file`), as its own
    `read` does inside; tests/test_audio.py checks they are still there, so a soundfile release without them
    fails a test, and here one line, not a user's run half-way."""
    try:
        ffi, snd, handle = sf._ffi, sf._snd, sound._file
    except AttributeError as error:
        raise PipelineError(
            f"soundfile {sf.__version__} no longer exposes libsndfile's reader ({error}); install the version "
            "requirements.txt pins"
        ) from error
    count = snd.sf_readf_float(handle, ffi.cast("float *", block.__array_interface__["data"][0]), block.shape[0])
    if code := snd.sf_error(handle):
        raise sf.LibsndfileError(code)
    return int(count)


def _decoded_blocks(path: Path, channels: int, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """The audio as float32 blocks of frames x channels, to its real end whatever the header says, or until
    past `max_frames`.

    It calls libsndfile's read itself (`readf_float`): soundfile's read stops at the header's count, and seeks
    after each block, which fails where the header claims more samples than there are."""
    decoded = 0
    try:
        with _FlacOfUnknownLength(path) as raw, sf.SoundFile(raw) as sound:
            while max_frames is None or decoded <= max_frames:
                block = np.empty((DECODE_BLOCK_SAMPLES, channels), dtype=np.float32)
                count = readf_float(sound, block)
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


def audio_num_samples(path: Path, conversion: Conversion = NO_CONVERSION) -> int:
    """Its length in 16 kHz samples, after checking its rate and channels: from the header where that is
    plausible (no decode needed), else by decoding, since a wrong count would put the audio in the wrong rows."""
    header = _checked_header(path, conversion)
    frames = header.frames
    if not _header_is_plausible(path, header):
        frames = sum(block.shape[0] for block in _decoded_blocks(path, header.channels))
    return resampled_length(frames, header.sample_rate)


def read_audio(
    path: Path, *, expected_samples: int | None = None, conversion: Conversion = NO_CONVERSION
) -> np.ndarray:
    """The whole file as 16 kHz mono float32 in [-1, 1] (downmixed and resampled where `conversion` allows);
    it must decode to `expected_samples` (what the run was planned with), or by default to its header's count
    where that is plausible."""
    header = _checked_header(path, conversion)
    if expected_samples is None and _header_is_plausible(path, header):
        expected_samples = resampled_length(header.frames, header.sample_rate)
    most = None if expected_samples is None else (expected_samples * header.sample_rate) // SAMPLE_RATE + 1
    blocks = list(_decoded_blocks(path, header.channels, max_frames=most))
    frames = np.concatenate(blocks) if blocks else np.zeros((0, header.channels), dtype=np.float32)
    audio = frames.mean(axis=1, dtype=np.float32) if header.channels > 1 else frames[:, 0]
    if header.sample_rate != SAMPLE_RATE:
        audio = soxr.resample(audio, header.sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
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
