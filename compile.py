"""Compile traced.pth for a backend, run every input bin, write logits bins, print throughput."""

from pathlib import Path

from wav2vec2_pipeline.bins import add_shard_arguments
from wav2vec2_pipeline.errors import ArgumentParser, command_line, run_cli
from wav2vec2_pipeline.inference import AUTO, BACKEND_NAMES, CompileOptions, add_aie_arguments
from wav2vec2_pipeline.model import MAX_SAMPLES


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--input_path", type=Path, required=True, help="dir of input bins from wav2vec2_preprocess.py")
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    parser.add_argument("--backend", choices=[AUTO, *BACKEND_NAMES], default=AUTO,
                        help="auto: aie, else cuda, else the fastest CPU path as accurate as fp32")  # fmt: skip
    parser.add_argument("--max_samples", type=int, default=MAX_SAMPLES,
                        help="input length, used only where the input dir has no manifest.json")  # fmt: skip
    parser.add_argument("--warmup_runs", type=int, default=10)
    parser.add_argument("--timed_runs", type=int, default=100)
    parser.add_argument("--device_id", type=int, default=0, help="NPU or GPU index")
    add_aie_arguments(parser)
    parser.add_argument("--threads", type=int, help="CPU backends: intra-op threads (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="redo every bin even where complete outputs exist")
    add_shard_arguments(parser)
    args = parser.parse_args()
    options = CompileOptions(
        batch_size=args.batch_size, backend=args.backend, warmup_runs=args.warmup_runs, timed_runs=args.timed_runs,
        max_samples=args.max_samples, device_id=args.device_id, soc_version=args.soc_version,
        precision_policy=args.precision_policy, threads=args.threads, overwrite=args.overwrite,
        aie_optimization_level=args.aie_optimization_level, allow_tensor_replace_int=args.allow_tensor_replace_int,
        shard=args.shard, merge=args.merge,
    )  # fmt: skip

    from wav2vec2_pipeline.inference import compile_bins

    result = compile_bins(args.input_path, args.output_path, args.torchscript_path, options, command_line())
    manifest, stage = result.manifest, result.stage
    if manifest is None:
        print(f"shard {args.shard}: {stage.bins_run} logits bins -> {args.output_path}; when every shard is done, "
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
