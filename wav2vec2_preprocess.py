"""LibriSpeech split -> one float32 bin per batch, the batch map and the ground-truth transcripts."""

import argparse
from pathlib import Path

from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.model import MAX_SAMPLES, load_feature_extractor
from wav2vec2_pipeline.preprocess import preprocess

SKIPPED_SHOWN = 10


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
        "--pytorch_model_dir",
        type=Path,
        help="take the feature-extractor settings from this model dir (default: base-960h's)",
    )
    args = parser.parse_args()

    result = preprocess(
        args.input, args.batch_size, args.output, args.data_path, args.max_samples,
        load_feature_extractor(args.pytorch_model_dir),
    )  # fmt: skip
    batch_map = result.batch_map
    print(
        f"{len(batch_map.scored)} utterances ({batch_map.seconds(batch_map.scored):.1f} s) "
        f"in {len(batch_map.bins)} bins of {args.batch_size} x {args.max_samples} float32 -> {args.output}"
    )
    if batch_map.skipped:
        shown = ", ".join(batch_map.skipped[:SKIPPED_SHOWN]) + (
            ", ..." if len(batch_map.skipped) > SKIPPED_SHOWN else ""
        )
        total_s = batch_map.seconds(batch_map.scored + batch_map.skipped)
        print(
            f"skipped {len(batch_map.skipped)} utterances longer than {args.max_samples} samples: "
            f"{batch_map.seconds(batch_map.skipped):.1f} s of {total_s:.1f} s of speech "
            f"({batch_map.seconds(batch_map.skipped) / total_s:.1%}) not scored: {shown}"
        )
    print(f"batch map: {result.map_file} (all skipped ids listed there); ground truth: {result.ground_truth_file}")


if __name__ == "__main__":
    run_cli(main)
