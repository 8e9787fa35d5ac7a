"""Audio (a LibriSpeech split, a JSONL manifest or a folder) -> float32 bins, the batch map and the ground truth."""

from pathlib import Path

from wav2vec2_pipeline.bins import add_shard_arguments
from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, command_line, run_cli
from wav2vec2_pipeline.model import MAX_SAMPLES
from wav2vec2_pipeline.planning import DEFAULT_BUCKET_SAMPLES, LONG_AUDIO_MODES, SKIP

IDS_SHOWN = 10


def sample_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise PipelineError(f"--bucket_samples {text!r}: expected comma-separated sample counts") from None


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument(
        "--input", type=Path, required=True,
        help="a LibriSpeech split (e.g. LibriSpeech/test-clean), a JSONL manifest (audio_filepath, optional text, "
        "duration, id) or a folder of audio files (flac, wav, ogg, mp3) to transcribe",
    )  # fmt: skip
    parser.add_argument("--resample", action="store_true", help="bring any sample rate to 16 kHz (soxr, high quality)")
    parser.add_argument("--downmix", action="store_true", help="average the channels of multi-channel audio")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help="dir for the input bins, e.g. data/bin_om_input/bs8")
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir for the batch map and ground truth")
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
    parser.add_argument("--overwrite", action="store_true", help="rewrite the outputs even where they are up to date")
    add_shard_arguments(parser)
    parser.add_argument(
        "--pytorch_model_dir", type=Path,
        help="take the feature-extractor settings and conv strides from this model dir (default: base-960h's)",
    )  # fmt: skip
    args = parser.parse_args()

    from wav2vec2_pipeline.audio import Conversion
    from wav2vec2_pipeline.model import VOCAB_FILE, load_geometry, load_vocab
    from wav2vec2_pipeline.planning import Layout
    from wav2vec2_pipeline.preprocess import PreprocessOptions, preprocess

    if args.bucket_samples != parser.get_default("bucket_samples") and not args.bucket:
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
    options = PreprocessOptions(
        batch_size=args.batch_size, layout=layout, model_dir=args.pytorch_model_dir,
        conversion=Conversion(args.resample, args.downmix), overwrite=args.overwrite,
        shard=args.shard, merge=args.merge,
    )  # fmt: skip
    result = preprocess(args.input, args.output, args.data_path, options, command_line())
    if result is None:
        print(f"{args.output} and its batch map are up to date (same audio, transcripts and settings): nothing to do "
              "(--overwrite rewrites them)")  # fmt: skip
        return
    batch_map = result.batch_map
    if batch_map is None:
        print(f"shard {args.shard}: {result.bins} bins ({result.bins_written} written, "
              f"{result.bins - result.bins_written} unchanged) -> {args.output}; when every shard is done, run the "
              "same command with --merge instead of --shard")  # fmt: skip
        return
    every = list(batch_map.utterances)
    rows = sum(len(b.rows) for b in batch_map.bins)
    with_rows = batch_map.with_rows
    print(
        f"{len(with_rows)} utterances ({batch_map.seconds(with_rows):.1f} s) in {rows} rows of "
        f"{len(batch_map.bins)} bins of {args.batch_size} x {'/'.join(map(str, layout.windows))} float32 "
        f"-> {args.output} ({result.bins_written} bins written, {len(batch_map.bins) - result.bins_written} "
        "unchanged since an earlier run)"
    )
    total_s = batch_map.seconds(every)
    for label in ("skipped", "cut", "chunked", "empty"):
        ids = batch_map.with_outcome(label)
        if ids:
            lost_s = sum(batch_map.seconds_lost(u) for u in ids)
            shown = ", ".join(ids[:IDS_SHOWN]) + (", ..." if len(ids) > IDS_SHOWN else "")
            what = (f"too short for one frame ({layout.geometry.receptive_field} samples), transcribed as empty"
                    if label == "empty" else f"longer than {batch_map.max_samples} samples")  # fmt: skip
            print(
                f"{label} {len(ids)} utterances {what} ({batch_map.seconds(ids):.1f} s): {lost_s:.1f} s of "
                f"{total_s:.1f} s of speech ({lost_s / total_s if total_s else 0:.1%}) lost: {shown}"
            )
    print(f"batch map: {result.map_file} (every utterance listed there); ground truth: {result.ground_truth_file}")


if __name__ == "__main__":
    run_cli(main)
