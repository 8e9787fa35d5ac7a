"""Local HF wav2vec2 CTC model dir -> TorchScript traced.pth, checked against the eager model."""

import argparse
from pathlib import Path

from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.export import check_trace, save_torchscript, trace
from wav2vec2_pipeline.model import MAX_SAMPLES, load_ctc_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pytorch_model_dir", required=True, help="dir with config.json and weights (or a hub id)")
    parser.add_argument("--output", type=Path, default=Path("traced.pth"))
    parser.add_argument("--max_samples", type=int, default=MAX_SAMPLES, help="input length to trace with")
    args = parser.parse_args()

    model = load_ctc_model(args.pytorch_model_dir)
    traced = trace(model, args.max_samples)
    check = check_trace(model, traced, args.max_samples)
    print(
        f"traced vs eager on a fresh random {tuple(check.input_shape)} input -> logits {tuple(check.output_shape)}: "
        f"max abs difference {check.max_abs_diff:.3g}"
    )
    save_torchscript(traced, args.output)
    print(f"saved {args.output}")


if __name__ == "__main__":
    run_cli(main)
