"""Run the model on a Ray cluster (or a local Ray): from input bins, as compile.py, or fused from audio, as
wav2vec2_preprocess.py + compile.py without writing input bins. Every output is what those stages write."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, command_line, run_cli
from wav2vec2_pipeline.inference import AUTO, BACKEND_NAMES, add_aie_arguments
from wav2vec2_pipeline.layout_args import add_input_arguments, add_layout_arguments, preprocess_options

LAYOUT_DESTS = ("data_path", "resample", "downmix", "long_audio", "stride_frames", "bucket", "exact", "bucket_samples",
                "pytorch_model_dir")
"""Options of audio only: --max_samples also gives the row length of input bins without a manifest, as compile.py's."""


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input_path", type=Path, help="dir of input bins from wav2vec2_preprocess.py (as compile.py)")
    add_input_arguments(parser, required=False)
    parser.add_argument("--data_path", type=Path, help="with --input: dir for the batch map and ground truth")
    add_layout_arguments(parser)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    parser.add_argument("--backend", choices=[AUTO, *BACKEND_NAMES], default=AUTO,
                        help="as compile.py's; auto: aie with --npus_per_actor, cuda with --gpus_per_actor, else "
                        "compile.py's CPU default")  # fmt: skip
    parser.add_argument("--address", help="a Ray cluster: auto, or host:port (default: RAY_ADDRESS where set, else a "
                        "local Ray started for this run)")  # fmt: skip
    parser.add_argument("--actors", type=int, default=1, help="model actors (each loads the model once)")
    parser.add_argument("--threads_per_actor", type=int,
                        help="CPU backends: intra-op threads per actor, and CPUs it reserves (default 1)")  # fmt: skip
    parser.add_argument("--gpus_per_actor", type=float, default=0.0, help="GPUs per actor (backend cuda)")
    parser.add_argument("--npus_per_actor", type=float, default=0.0,
                        help="Ascend NPUs per actor (Ray's NPU resource; backend aie)")  # fmt: skip
    parser.add_argument("--bins_per_task", type=int, default=4, help="bins per Ray block and actor call")
    add_aie_arguments(parser)
    args = parser.parse_args()

    if (args.input is None) == (args.input_path is None):
        raise PipelineError("pass --input_path (input bins, as compile.py) or --input (audio, fused), not both")
    if args.input_path is not None:
        given = [f"--{dest}" for dest in LAYOUT_DESTS if getattr(args, dest) != parser.get_default(dest)]
        if given:
            raise PipelineError(f"{given[0]} is for audio (--input); --input_path bins are laid out already")
    elif args.data_path is None:
        raise PipelineError("--input needs --data_path, the dir for the batch map and ground truth")

    from wav2vec2_pipeline.distributed import ClusterOptions

    cluster = ClusterOptions(
        address=args.address, actors=args.actors, threads_per_actor=args.threads_per_actor,
        gpus_per_actor=args.gpus_per_actor, npus_per_actor=args.npus_per_actor, bins_per_task=args.bins_per_task,
    )  # fmt: skip
    if args.batch_size < 1:
        raise PipelineError(f"--batch_size must be at least 1, got {args.batch_size}")
    from wav2vec2_pipeline.backends import DeviceOptions

    device = DeviceOptions(soc_version=args.soc_version, precision_policy=args.precision_policy,
                           optimization_level=args.aie_optimization_level,
                           allow_tensor_replace_int=args.allow_tensor_replace_int)  # fmt: skip
    if args.input_path is not None:
        run_from_bins(args, cluster, device)
    else:
        run_from_audio(args, cluster, device)


def run_from_bins(args, cluster, device) -> None:
    from wav2vec2_pipeline.distributed import run_bins, summary_line

    result, runner = run_bins(args.input_path, args.output_path, args.torchscript_path, args.batch_size, args.backend,
                              cluster, command_line(), max_samples=args.max_samples, device=device)  # fmt: skip
    if not runner.actors:
        print(f"{args.output_path} is up to date (same model, input bins and backend): nothing to run")
        return
    print(f"{len(result.manifest.bins)} logits bins -> {args.output_path}")
    print(summary_line(result.stage, runner))


def run_from_audio(args, cluster, device) -> None:
    from wav2vec2_pipeline.distributed import run_audio, summary_line

    options = preprocess_options(args)
    result, runner = run_audio(args.input, args.output_path, args.data_path, args.torchscript_path, options,
                               args.backend, cluster, command_line(), device)  # fmt: skip
    if not runner.actors:
        print(f"{args.output_path} and the batch map in {args.data_path} are up to date (same audio, settings, model "
              "and backend): nothing to run")  # fmt: skip
        return
    print(f"{len(result.manifest.bins)} logits bins -> {args.output_path}; batch map: {result.map_file}; ground truth: "
          f"{result.ground_truth_file}")  # fmt: skip
    print(summary_line(result.stage, runner))


if __name__ == "__main__":
    run_cli(main)
