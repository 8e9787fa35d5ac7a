"""Preprocess's audio and layout options, declared once for every script that lays out audio
(wav2vec2_preprocess.py, and wav2vec2_distributed.py's fused mode), and checked the same way."""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wav2vec2_pipeline.errors import PipelineError, require
from wav2vec2_pipeline.model import MAX_SAMPLES, Geometry
from wav2vec2_pipeline.options import build, option
from wav2vec2_pipeline.planning import (
    BUCKET_LAYOUT,
    CHUNK,
    DEFAULT_BIN_SAMPLES,
    DEFAULT_BUCKET_SAMPLES,
    LAYOUTS,
    LONG_AUDIO_MODES,
    LONG_WINDOW,
    SKIP,
    STATIC_LAYOUT,
    WHOLE_LAYOUT,
    Layout,
)

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
    layout: str = option(WHOLE_LAYOUT, "how utterances become rows: whole (each utterance in one row up to "
                                       "--max_samples, bins sorted by length and sized by --bin_samples; for "
                                       "backends that take any shape), bucket (a few static lengths, "
                                       "--bucket_samples: for aie), static (one static window, --max_samples: the "
                                       "Ascend guide's layout)", choices=LAYOUTS)  # fmt: skip
    max_samples: int | None = option(None, "longest row: whole: longer recordings are chunked (default "
                                           f"{LONG_WINDOW}, 35 s); static: the window (default {MAX_SAMPLES}, "
                                           "6.25 s, the Ascend guide's)", type=int)  # fmt: skip
    long_audio: str | None = option(None, "utterances longer than the longest row: skip them, cut them, or chunk "
                                          "them into overlapping windows (loses nothing). Default: chunk; with "
                                          "--layout static, skip (the Ascend guide's)",
                                    choices=LONG_AUDIO_MODES)  # fmt: skip
    stride_frames: int | None = option(None, "chunk only: context frames dropped on each side of a window "
                                             "(default: a sixth of the window)", type=int)
    bin_samples: int | None = option(None, "whole only: at most this many samples in a bin, rows x row length "
                                           f"(default {DEFAULT_BIN_SAMPLES}, 100 s of audio, or one row of "
                                           "--max_samples), so a bin of long rows holds fewer than --batch_size; "
                                           "checked against memory before any work", type=int)  # fmt: skip
    bucket_samples: str | None = option(None, "bucket only: comma-separated row lengths in samples (default: "
                                              "3, 5, 7, 10, 14, 20, 35 s)", type=str)
    pytorch_model_dir: Path | None = option(None, "take the feature-extractor settings and conv strides from this "
                                                  "model dir (default: base-960h's)", type=Path)

    def __post_init__(self) -> None:
        require((
            (self.bucket_samples is None or self.layout == BUCKET_LAYOUT,
             "--bucket_samples sets the lengths of --layout bucket; pass both"),
            (self.max_samples is None or self.layout != BUCKET_LAYOUT,
             "--layout bucket takes its row lengths from --bucket_samples, not --max_samples"),
            (self.bin_samples is None or self.layout == WHOLE_LAYOUT,
             "--bin_samples sizes the bins of --layout whole; the other layouts hold --batch_size rows"),
            (self.stride_frames is None or self.long_audio_mode == CHUNK, "--stride_frames means nothing without "
                                                                          "--long_audio chunk; pass both"),
        ))  # fmt: skip

    @property
    def long_audio_mode(self) -> str:
        """--long_audio, or the layout's default: skip for the Ascend guide's static window, else chunk."""
        return self.long_audio or (SKIP if self.layout == STATIC_LAYOUT else CHUNK)

    def layout_of(self, geometry: Geometry) -> Layout:
        """The row layout these flags ask for, each default taken from the layout."""
        whole = self.layout == WHOLE_LAYOUT
        buckets = ",".join(map(str, DEFAULT_BUCKET_SAMPLES)) if self.bucket_samples is None else self.bucket_samples
        window = self.max_samples if self.max_samples is not None else LONG_WINDOW if whole else MAX_SAMPLES
        windows = sample_list(buckets) if self.layout == BUCKET_LAYOUT else (window,)
        if len(set(windows)) != len(windows):
            raise PipelineError(f"--bucket_samples {buckets}: a length is listed twice")
        budget = self.bin_samples if self.bin_samples is not None else max(DEFAULT_BIN_SAMPLES, window)
        return Layout(windows, self.long_audio_mode, self.stride_frames, geometry, exact=whole,
                      bin_samples=budget if whole else None)


def preprocess_options(args: argparse.Namespace, *, overwrite: bool = False) -> "PreprocessOptions":
    """The options of `LayoutFlags` and --batch_size, checked against each other and the model."""
    from wav2vec2_pipeline.audio import Conversion
    from wav2vec2_pipeline.audioplan import PreprocessOptions
    from wav2vec2_pipeline.model import VOCAB_FILE, load_geometry, load_vocab

    flags = build(LayoutFlags, args)
    geometry = load_geometry(flags.pytorch_model_dir)
    model_dir = flags.pytorch_model_dir
    if model_dir is not None and (model_dir / VOCAB_FILE).is_file():
        load_vocab(model_dir, geometry)  # a model dir that contradicts itself is refused here already
    return PreprocessOptions(
        batch_size=args.batch_size, layout=flags.layout_of(geometry), model_dir=model_dir,
        conversion=Conversion(flags.resample, flags.downmix), overwrite=overwrite,
    )  # fmt: skip
