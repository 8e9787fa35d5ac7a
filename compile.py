"""Compile traced.pth for a backend, run every input bin, write logits bins, print throughput."""

import argparse
from pathlib import Path

from wav2vec2_pipeline.backends import AUTO, BACKENDS, DeviceOptions, create_backend
from wav2vec2_pipeline.bins import read_bin
from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.inference import file_sha256, find_input_bins, measure_throughput, run_bins
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--input_path", type=Path, required=True, help="dir of input bins from wav2vec2_preprocess.py")
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    parser.add_argument("--backend", choices=[AUTO, *BACKENDS], default=AUTO, help="auto tries aie, cuda, torchscript")
    parser.add_argument(
        "--max_samples",
        type=int,
        default=MAX_SAMPLES,
        help="input length, used only where the input dir has no manifest.json",
    )
    parser.add_argument("--warmup_runs", type=int, default=10)
    parser.add_argument("--timed_runs", type=int, default=100)
    parser.add_argument("--device_id", type=int, default=0, help="NPU or GPU index")
    parser.add_argument("--soc_version", default="Ascend310P3", help="aie only")
    parser.add_argument("--precision_policy", default="FP16", help="aie only: a torch_aie.PrecisionPolicy name")
    args = parser.parse_args()

    inputs = find_input_bins(args.input_path, args.batch_size, args.max_samples)
    backend = create_backend(args.backend, DeviceOptions(args.device_id, args.soc_version, args.precision_policy))
    shapes = ", ".join(f"{n} x {samples}" for n, samples in dict.fromkeys(inputs.shapes.values()))
    print(f"backend {backend.name}: {args.torchscript_path} for input {shapes} float32")
    backend.load(args.torchscript_path)

    facts = {"torchscript_sha256": file_sha256(args.torchscript_path)}
    stage = run_bins(backend, inputs, args.output_path, facts)
    real = "" if inputs.rows_used is None else f", {inputs.rows_used} of them holding speech"
    print(
        f"stage: {stage.bins} bins, {stage.rows} rows{real}, in {stage.wall_s:.2f} s wall "
        f"(bin reads and writes included): {stage.rows_per_s:.2f} samples/s -> {args.output_path}"
    )
    if inputs.speech_samples is not None:
        speech_s = inputs.speech_samples / SAMPLE_RATE
        print(f"stage: {speech_s:.1f} s of speech, {speech_s / stage.wall_s:.2f} audio seconds per wall second")

    first_path, first_shape = next(iter(inputs.shapes.items()))
    throughput = measure_throughput(backend, read_bin(first_path, first_shape, ""), args.warmup_runs, args.timed_runs)
    print(
        f"model throughput ({backend.name}, {first_shape[0]} x {first_shape[1]}, "
        f"{args.warmup_runs} warm-up + {throughput.runs} timed runs, batch resident on the device): "
        f"{throughput.samples_per_s:.2f} samples/s, "
        f"median {throughput.median_run_s * 1000:.1f} ms per batch"
    )


if __name__ == "__main__":
    run_cli(main)
