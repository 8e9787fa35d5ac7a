"""LibriSpeech split -> one float32 bin per batch, the batch map and the ground-truth transcripts."""

import argparse
from pathlib import Path

from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.model import MAX_SAMPLES, load_config, load_feature_extractor
from wav2vec2_pipeline.planning import DEFAULT_BUCKET_SAMPLES, LONG_AUDIO_MODES, SKIP
from wav2vec2_pipeline.preprocess import Layout, preprocess

IDS_SHOWN = 10


def sample_list(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="a LibriSpeech split, e.g. LibriSpeech/test-clean")
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
        "--bucket_samples", type=sample_list, default=DEFAULT_BUCKET_SAMPLES,
        help="with --bucket: comma-separated row lengths in samples (default: 3, 5, 7, 10, 14, 20, 35 s)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="rewrite the outputs even where they are up to date")
    parser.add_argument(
        "--pytorch_model_dir", type=Path,
        help="take the feature-extractor settings and conv strides from this model dir (default: base-960h's)",
    )  # fmt: skip
    args = parser.parse_args()

    layout = Layout(args.bucket_samples if args.bucket else (args.max_samples,), args.long_audio, args.stride_frames)
    result = preprocess(
        args.input, args.batch_size, args.output, args.data_path, layout,
        load_feature_extractor(args.pytorch_model_dir), load_config(args.pytorch_model_dir), args.overwrite,
    )  # fmt: skip
    if result is None:
        print(f"{args.output} and its batch map are up to date (same audio, transcripts and settings): nothing to do "
              "(--overwrite rewrites them)")  # fmt: skip
        return
    batch_map = result.batch_map
    every = list(batch_map.num_samples)
    rows = sum(len(ids) for ids in batch_map.bins.values())
    print(
        f"{len(batch_map.scored)} utterances ({batch_map.seconds(batch_map.scored):.1f} s) in {rows} rows of "
        f"{len(batch_map.bins)} bins of {args.batch_size} x {'/'.join(map(str, layout.windows))} float32 "
        f"-> {args.output}"
    )
    for label, ids in (("skipped", batch_map.skipped), ("cut", batch_map.cut), ("chunked", batch_map.chunked)):
        if ids:
            lost_s = sum(batch_map.seconds_lost(u) for u in ids)
            shown = ", ".join(ids[:IDS_SHOWN]) + (", ..." if len(ids) > IDS_SHOWN else "")
            print(
                f"{label} {len(ids)} utterances longer than {batch_map.max_samples} samples "
                f"({batch_map.seconds(ids):.1f} s): {lost_s:.1f} s of {batch_map.seconds(every):.1f} s of speech "
                f"({lost_s / batch_map.seconds(every):.1%}) lost: {shown}"
            )
    print(f"batch map: {result.map_file} (every utterance listed there); ground truth: {result.ground_truth_file}")


if __name__ == "__main__":
    run_cli(main)
