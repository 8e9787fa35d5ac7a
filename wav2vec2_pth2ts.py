"""Local HF wav2vec2 CTC model dir -> TorchScript traced.pth, checked against the eager model."""

import argparse
import json
from pathlib import Path

from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.export import check_trace, save_torchscript, trace
from wav2vec2_pipeline.fileio import atomic_write_json
from wav2vec2_pipeline.model import MAX_SAMPLES, load_ctc_model
from wav2vec2_pipeline.provenance import digest, stamp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pytorch_model_dir", required=True, help="dir with config.json and weights (or a hub id)")
    parser.add_argument("--output", type=Path, default=Path("traced.pth"))
    parser.add_argument("--max_samples", type=int, default=MAX_SAMPLES, help="input length to trace with")
    parser.add_argument("--overwrite", action="store_true", help="export again even where the output is up to date")
    args = parser.parse_args()

    source = Path(args.pytorch_model_dir)
    export_id = digest({"model": stamp(list(source.iterdir())) if source.is_dir() else args.pytorch_model_dir,
                        "max_samples": args.max_samples})  # fmt: skip
    record = args.output.with_name(args.output.name + ".json")
    if (
        not args.overwrite
        and args.output.is_file()
        and record.is_file()
        and json.loads(record.read_text()) == export_id
    ):
        print(
            f"{args.output} is up to date (same model files and --max_samples): nothing to do (--overwrite redoes it)"
        )
        return
    model = load_ctc_model(args.pytorch_model_dir)
    traced = trace(model, args.max_samples)
    check = check_trace(model, traced, args.max_samples)
    print(
        f"traced vs eager on a fresh random {tuple(check.input_shape)} input -> logits {tuple(check.output_shape)}: "
        f"max abs difference {check.max_abs_diff:.3g}"
    )
    save_torchscript(traced, args.output)
    atomic_write_json(record, export_id)
    print(f"saved {args.output}")


if __name__ == "__main__":
    run_cli(main)
