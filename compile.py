"""Compile traced.pth for a backend, run every input bin, write logits bins, print throughput."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, command_line, run_cli
from wav2vec2_pipeline.inference import CompileOptions
from wav2vec2_pipeline.options import add_options, build
from wav2vec2_pipeline.shards import Split


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input_path", type=Path, required=True, help="dir of input bins from wav2vec2_preprocess.py")
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    add_options(parser, CompileOptions)
    add_options(parser, Split)
    args = parser.parse_args()
    options = build(CompileOptions, args)
    split = build(Split, args)

    from wav2vec2_pipeline.inference import run_compile

    result = run_compile(args.input_path, args.output_path, args.torchscript_path, options, command_line(), split)
    manifest, stage = result.manifest, result.stage
    if split.shard is not None and not result.up_to_date:
        print(f"shard {split.shard}: {stage.bins_run} logits bins -> {args.output_path}; when every shard is done, "
              "run the same command with --merge instead of --shard")  # fmt: skip
    elif result.up_to_date:
        print(f"{args.output_path} is up to date (same model, input bins and backend): nothing to run "
              "(--overwrite redoes it)")  # fmt: skip
    else:
        print(f"{len(manifest.bins)} logits bins -> {args.output_path}")
    if stage.rows_run:
        audio = "" if stage.audio_s_per_s is None else f", {stage.audio_s_per_s:.2f} audio seconds per wall second"
        print(
            f"stage: {stage.rows_run} rows in {stage.wall_s:.2f} s wall (bin reads and writes included): "
            f"{stage.samples_per_s:.2f} samples/s{audio}"
        )
    else:
        print("stage: every bin was finished by an earlier run of the same model, inputs and backend")
    throughput = manifest.throughput if manifest is not None else None
    if throughput is None:
        print("model throughput: not measured by --shard or --merge runs; the same command without them measures "
              "it and runs no bin again")  # fmt: skip
        return
    print(
        f"model throughput ({manifest.backend}, {' x '.join(map(str, throughput.shape))}, {throughput.warmup_runs} "
        f"warm-up + {len(throughput.run_s)} timed runs, batch resident on the device): "
        f"{throughput.samples_per_s:.2f} samples/s, median {throughput.median_run_ms:.1f} ms per batch; "
        f"peak RSS {stage.peak_rss_mib:.0f} MiB"
    )


if __name__ == "__main__":
    run_cli(main)
