"""Preprocess's audio and layout options, declared once for every script that lays out audio
(wav2vec2_preprocess.py, and wav2vec2_distributed.py's fused mode), and checked the same way."""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import MAX_SAMPLES
from wav2vec2_pipeline.options import build, option
from wav2vec2_pipeline.planning import DEFAULT_BUCKET_SAMPLES, LONG_AUDIO_MODES, SKIP

if TYPE_CHECKING:
    from wav2vec2_pipeline.audioplan import PreprocessOptions


def sample_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise PipelineError(f"--bucket_samples {text!r}: expected comma-separated sample counts") from None


def add_input_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--input: what audio comes in."""
    parser.add_argument(
        "--input", type=Path, required=required,
        help="a LibriSpeech split (e.g. LibriSpeech/test-clean), a JSONL manifest (audio_filepath, optional text, "
        "duration, id) or a folder of audio files (flac, wav, ogg, mp3) to transcribe",
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class LayoutFlags:
    """How audio is converted and laid out into rows of bins, and the model dir whose feature extractor
    normalises it."""

    resample: bool = option(False, "bring any sample rate to 16 kHz (soxr, high quality)")
    downmix: bool = option(False, "average the channels of multi-channel audio")
    max_samples: int = option(MAX_SAMPLES, "static input length")
    long_audio: str = option(SKIP, "utterances longer than the window: skip them (the reference), cut them, or "
                                   "chunk them into overlapping windows (loses nothing; recommended)",
                             choices=LONG_AUDIO_MODES)  # fmt: skip
    stride_frames: int | None = option(None, "chunk only: context frames dropped on each side of a window "
                                             "(default: a sixth of the window)", type=int)
    bucket: bool = option(False, "sort utterances by length into bins of a few static lengths (--bucket_samples) "
                                 "instead of one")
    exact: bool = option(False, "sort utterances by length and make each bin's rows as long as its longest "
                                "utterance (the least padding; for backends that take any shape, not aie); longer "
                                "than --max_samples: --long_audio")
    bucket_samples: str | None = option(None, "with --bucket: comma-separated row lengths in samples (default: "
                                              "3, 5, 7, 10, 14, 20, 35 s)", type=str)
    pytorch_model_dir: Path | None = option(None, "take the feature-extractor settings and conv strides from this "
                                                  "model dir (default: base-960h's)", type=Path)

    def __post_init__(self) -> None:
        if self.bucket_samples is not None and not self.bucket:
            raise PipelineError("--bucket_samples means nothing without --bucket; pass both")
        if self.stride_frames is not None and self.long_audio != "chunk":
            raise PipelineError("--stride_frames means nothing without --long_audio chunk; pass both")


def preprocess_options(args: argparse.Namespace, *, overwrite: bool = False) -> "PreprocessOptions":
    """The options of `LayoutFlags` and --batch_size, checked against each other and the model."""
    from wav2vec2_pipeline.audio import Conversion
    from wav2vec2_pipeline.audioplan import PreprocessOptions
    from wav2vec2_pipeline.model import VOCAB_FILE, load_geometry, load_vocab
    from wav2vec2_pipeline.planning import Layout

    flags = build(LayoutFlags, args)
    buckets = flags.bucket_samples or ",".join(map(str, DEFAULT_BUCKET_SAMPLES))
    windows = sample_list(buckets) if flags.bucket else (flags.max_samples,)
    if len(set(windows)) != len(windows):
        raise PipelineError(f"--bucket_samples {buckets}: a length is listed twice")
    geometry = load_geometry(flags.pytorch_model_dir)
    model_dir = flags.pytorch_model_dir
    if model_dir is not None and (model_dir / VOCAB_FILE).is_file():
        load_vocab(model_dir, geometry)  # a model dir that contradicts itself is refused here already
    layout = Layout(windows, flags.long_audio, flags.stride_frames, geometry, exact=flags.exact)
    return PreprocessOptions(
        batch_size=args.batch_size, layout=layout, model_dir=model_dir,
        conversion=Conversion(flags.resample, flags.downmix), overwrite=overwrite,
    )  # fmt: skip
