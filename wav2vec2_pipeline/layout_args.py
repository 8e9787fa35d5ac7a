"""Preprocess's layout options on the command line, declared once for every script that lays out audio
(wav2vec2_preprocess.py, and wav2vec2_distributed.py's fused mode), and checked the same way."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import MAX_SAMPLES
from wav2vec2_pipeline.planning import DEFAULT_BUCKET_SAMPLES, LONG_AUDIO_MODES, SKIP

if TYPE_CHECKING:
    from wav2vec2_pipeline.bins import Shard
    from wav2vec2_pipeline.preprocess import PreprocessOptions


def sample_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise PipelineError(f"--bucket_samples {text!r}: expected comma-separated sample counts") from None


def add_input_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """--input, --resample, --downmix: what audio comes in."""
    parser.add_argument(
        "--input", type=Path, required=required,
        help="a LibriSpeech split (e.g. LibriSpeech/test-clean), a JSONL manifest (audio_filepath, optional text, "
        "duration, id) or a folder of audio files (flac, wav, ogg, mp3) to transcribe",
    )  # fmt: skip
    parser.add_argument("--resample", action="store_true", help="bring any sample rate to 16 kHz (soxr, high quality)")
    parser.add_argument("--downmix", action="store_true", help="average the channels of multi-channel audio")


def add_layout_arguments(parser: argparse.ArgumentParser) -> None:
    """How utterances become rows of bins, and the model dir whose feature extractor normalises them."""
    parser.add_argument(
        "--max_samples", type=int, default=MAX_SAMPLES, help="static input length (default: %(default)s)"
    )
    parser.add_argument(
        "--long_audio", choices=LONG_AUDIO_MODES, default=SKIP,
        help="utterances longer than the window: skip them (the reference), cut them, or chunk them into "
        "overlapping windows (loses nothing; recommended)",
    )  # fmt: skip
    parser.add_argument(
        "--stride_frames", type=int,
        help="chunk only: context frames dropped on each side of a window (default: a sixth of the window)",
    )  # fmt: skip
    parser.add_argument(
        "--bucket", action="store_true",
        help="sort utterances by length into bins of a few static lengths (--bucket_samples) instead of one",
    )  # fmt: skip
    parser.add_argument(
        "--exact", action="store_true",
        help="sort utterances by length and make each bin's rows as long as its longest utterance (the least "
        "padding; for backends that take any shape, not aie); longer than --max_samples: --long_audio",
    )  # fmt: skip
    parser.add_argument(
        "--bucket_samples", default=",".join(map(str, DEFAULT_BUCKET_SAMPLES)),
        help="with --bucket: comma-separated row lengths in samples (default: 3, 5, 7, 10, 14, 20, 35 s)",
    )  # fmt: skip
    parser.add_argument(
        "--pytorch_model_dir", type=Path,
        help="take the feature-extractor settings and conv strides from this model dir (default: base-960h's)",
    )  # fmt: skip


def preprocess_options(
    args: argparse.Namespace, *, overwrite: bool = False, shard: "Shard | None" = None, merge: bool = False
) -> "PreprocessOptions":
    """The options of `add_input_arguments` and `add_layout_arguments`, checked against each other and the model."""
    from wav2vec2_pipeline.audio import Conversion
    from wav2vec2_pipeline.model import VOCAB_FILE, load_geometry, load_vocab
    from wav2vec2_pipeline.planning import Layout
    from wav2vec2_pipeline.preprocess import PreprocessOptions

    if args.bucket_samples != ",".join(map(str, DEFAULT_BUCKET_SAMPLES)) and not args.bucket:
        raise PipelineError("--bucket_samples means nothing without --bucket; pass both")
    if args.stride_frames is not None and args.long_audio != "chunk":
        raise PipelineError("--stride_frames means nothing without --long_audio chunk; pass both")
    windows = sample_list(args.bucket_samples) if args.bucket else (args.max_samples,)
    if len(set(windows)) != len(windows):
        raise PipelineError(f"--bucket_samples {args.bucket_samples}: a length is listed twice")
    geometry = load_geometry(args.pytorch_model_dir)
    if args.pytorch_model_dir is not None and (args.pytorch_model_dir / VOCAB_FILE).is_file():
        load_vocab(args.pytorch_model_dir, geometry)  # a model dir that contradicts itself is refused here already
    layout = Layout(windows, args.long_audio, args.stride_frames, geometry, exact=args.exact)
    return PreprocessOptions(
        batch_size=args.batch_size, layout=layout, model_dir=args.pytorch_model_dir,
        conversion=Conversion(args.resample, args.downmix), overwrite=overwrite, shard=shard, merge=merge,
    )  # fmt: skip
