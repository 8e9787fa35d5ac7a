"""Local HF wav2vec2 CTC model dir -> TorchScript traced.pth, checked against the eager model."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, run_cli
from wav2vec2_pipeline.model import MAX_SAMPLES


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--pytorch_model_dir", required=True, help="dir with config.json and weights (or a hub id)")
    parser.add_argument("--output", type=Path, default=Path("traced.pth"))
    parser.add_argument("--max_samples", type=int, default=MAX_SAMPLES, help="input length to trace with")
    parser.add_argument("--overwrite", action="store_true", help="export again even where the output is up to date")
    args = parser.parse_args()
    if args.max_samples < 1:
        raise PipelineError(f"--max_samples must be positive, got {args.max_samples}")

    from wav2vec2_pipeline.export import export

    result = export(args.pytorch_model_dir, args.output, max_samples=args.max_samples, overwrite=args.overwrite)
    if result.check is None:
        print(f"{args.output} is up to date (same model file contents and --max_samples): nothing to do "
              "(--overwrite redoes it)")  # fmt: skip
        return
    check = result.check
    print(
        f"traced vs eager on a fresh random {tuple(check.input_shape)} input -> logits {tuple(check.output_shape)}: "
        f"max abs difference {check.max_abs_diff:.3g}"
    )
    print(f"saved {args.output} and its record {args.output.name}.json")


if __name__ == "__main__":
    run_cli(main)
