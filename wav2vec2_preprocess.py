"""Audio (a LibriSpeech split, a JSONL manifest or a folder) -> float32 bins, the batch map and the ground truth."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, command_line, run_cli
from wav2vec2_pipeline.layout_args import LayoutFlags, add_input_arguments, preprocess_options
from wav2vec2_pipeline.options import add_options, build
from wav2vec2_pipeline.shards import Split

IDS_SHOWN = 10


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    add_input_arguments(parser)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help="dir for the input bins, e.g. data/bin_om_input/bs8")
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir for the batch map and ground truth")
    add_options(parser, LayoutFlags)
    parser.add_argument("--overwrite", action="store_true", help="rewrite the outputs even where they are up to date")
    add_options(parser, Split)
    args = parser.parse_args()
    split = build(Split, args)

    from wav2vec2_pipeline.preprocess import run_preprocess

    options = preprocess_options(args, overwrite=args.overwrite)
    layout = options.layout
    result = run_preprocess(args.input, args.output, args.data_path, options, command_line(), split)
    if result is None:
        print(f"{args.output} and its batch map are up to date (same audio, transcripts and settings): nothing to do "
              "(--overwrite rewrites them)")  # fmt: skip
        return
    batch_map = result.batch_map
    if batch_map is None:
        print(f"shard {split.shard}: {result.bins} bins ({result.bins_written} written, "
              f"{result.bins - result.bins_written} unchanged) -> {args.output}; when every shard is done, run the "
              "same command with --merge instead of --shard")  # fmt: skip
        return
    every = list(batch_map.utterances)
    rows = sum(len(b.rows) for b in batch_map.bins)
    with_rows = batch_map.with_rows
    shape = (f"whole utterances sorted by length, rows of up to {layout.windows[0]} samples, at most "
             f"{layout.bin_samples} samples a bin" if layout.exact else
             f"{args.batch_size} x {'/'.join(map(str, layout.windows))} float32")  # fmt: skip
    print(
        f"{len(with_rows)} utterances ({batch_map.seconds(with_rows):.1f} s) in {rows} rows of "
        f"{len(batch_map.bins)} bins ({shape}) -> {args.output} ({result.bins_written} bins written, "
        f"{len(batch_map.bins) - result.bins_written} unchanged since an earlier run)"
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
