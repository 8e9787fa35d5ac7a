"""Run the model on a Ray cluster (or a local Ray): from input bins, as compile.py, or fused from audio, as
wav2vec2_preprocess.py + compile.py without writing input bins. Every output is what those stages write."""

from pathlib import Path

from wav2vec2_pipeline.cluster import ClusterOptions
from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, command_line, run_cli
from wav2vec2_pipeline.inference import CompileOptions
from wav2vec2_pipeline.layout_args import LayoutFlags, add_input_arguments, preprocess_options
from wav2vec2_pipeline.options import add_options, build, given


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input_path", type=Path, help="dir of input bins from wav2vec2_preprocess.py (as compile.py)")
    add_input_arguments(parser, required=False)
    parser.add_argument("--data_path", type=Path, help="with --input: dir for the batch map and ground truth")
    add_options(parser, LayoutFlags)
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    add_options(parser, CompileOptions, skip=("max_samples", "warmup_runs", "timed_runs", "overwrite", "device_id",
                                              "threads"),
                helps={"backend": "as compile.py's; auto: aie with --npus_per_actor, cuda with --gpus_per_actor, "
                                  "else compile.py's CPU default (default: auto)"})  # fmt: skip
    add_options(parser, ClusterOptions)
    args = parser.parse_args()

    if (args.input is None) == (args.input_path is None):
        raise PipelineError("pass --input_path (input bins, as compile.py) or --input (audio, fused), not both")
    if args.input_path is not None:
        audio_only = [flag for flag in given(args, LayoutFlags) if flag != "--max_samples"]
        if args.data_path is not None:
            audio_only.insert(0, "--data_path")
        if audio_only:
            raise PipelineError(f"{audio_only[0]} is for audio (--input); --input_path bins are laid out already")
    elif args.data_path is None:
        raise PipelineError("--input needs --data_path, the dir for the batch map and ground truth")
    cluster = build(ClusterOptions, args)
    options = build(CompileOptions, args)
    if args.input_path is not None:
        run_from_bins(args, cluster, options)
    else:
        run_from_audio(args, cluster, options)


def run_from_bins(args, cluster: ClusterOptions, options: CompileOptions) -> None:
    from wav2vec2_pipeline.distributed import run_bins, summary_line

    max_samples = getattr(args, "max_samples", options.max_samples)  # bins without a manifest, as compile.py's
    result, runner = run_bins(args.input_path, args.output_path, args.torchscript_path, options.batch_size,
                              options.backend, cluster, command_line(), max_samples, options.device)  # fmt: skip
    if not runner.actors:
        print(f"{args.output_path} is up to date (same model, input bins and backend): nothing to run")
        return
    print(f"{len(result.manifest.bins)} logits bins -> {args.output_path}")
    print(summary_line(result.stage, runner))


def run_from_audio(args, cluster: ClusterOptions, options: CompileOptions) -> None:
    from wav2vec2_pipeline.distributed import run_audio, summary_line

    layout = preprocess_options(args)
    result, runner = run_audio(args.input, args.output_path, args.data_path, args.torchscript_path, layout,
                               options.backend, cluster, command_line(), options.device)  # fmt: skip
    if not runner.actors:
        print(f"{args.output_path} and the batch map in {args.data_path} are up to date (same audio, settings, model "
              "and backend): nothing to run")  # fmt: skip
        return
    print(f"{len(result.manifest.bins)} logits bins -> {args.output_path}; batch map: {result.map_file}; ground truth: "
          f"{result.ground_truth_file}")  # fmt: skip
    print(summary_line(result.stage, runner))


if __name__ == "__main__":
    run_cli(main)
