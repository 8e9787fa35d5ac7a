"""Compile traced.pth for a backend, run every input bin, write logits bins, print throughput."""

import argparse
import resource
from pathlib import Path

from wav2vec2_pipeline.backends import AUTO, BACKENDS, DeviceOptions, create_backend
from wav2vec2_pipeline.bins import read_bin, read_manifest, update_manifest
from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.inference import completed, find_input_bins, measure_throughput, run_bins
from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE
from wav2vec2_pipeline.provenance import digest, file_sha256, stamp


def print_metrics(metrics: dict) -> None:
    print(
        f"stage: {metrics['rows_run']} rows in {metrics['stage_wall_s']:.2f} s wall (bin reads and writes "
        f"included): {metrics['stage_samples_per_s']:.2f} samples/s"
        + (f", {metrics['audio_s_per_s']:.2f} audio seconds per wall second" if metrics["audio_s_per_s"] else "")
    )
    print(
        f"model throughput ({metrics['backend']}, {' x '.join(map(str, metrics['throughput_shape']))}, "
        f"{metrics['warmup_runs']} warm-up + {metrics['timed_runs']} timed runs, batch resident on the device): "
        f"{metrics['samples_per_s']:.2f} samples/s, median {metrics['median_run_ms']:.1f} ms per batch; "
        f"peak RSS {metrics['peak_rss_mib']:.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--input_path", type=Path, required=True, help="dir of input bins from wav2vec2_preprocess.py")
    parser.add_argument("--output_path", type=Path, required=True, help="dir for the logits bins")
    parser.add_argument("--torchscript_path", type=Path, default=Path("traced.pth"))
    parser.add_argument(
        "--backend", choices=[AUTO, *BACKENDS], default=AUTO, help="auto tries aie, cuda, onnxruntime, torchscript"
    )
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
    parser.add_argument("--threads", type=int, help="CPU backends: intra-op threads (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="redo every bin even where complete outputs exist")
    args = parser.parse_args()

    inputs = find_input_bins(args.input_path, args.batch_size, args.max_samples)
    options = DeviceOptions(args.device_id, args.soc_version, args.precision_policy, args.threads)
    backend = create_backend(args.backend, options)
    input_manifest = read_manifest(args.input_path) or {}
    model_sha = file_sha256(args.torchscript_path) if args.torchscript_path.is_file() else None
    identity = {
        "torchscript_sha256": model_sha,
        "inputs": input_manifest.get("preprocess_id") or stamp(list(inputs.shapes)),
        "backend": backend.name,
        "options": [options.soc_version, options.precision_policy] if backend.name == "aie" else None,
    }
    run_key = digest(identity)
    previous = None if args.overwrite else completed(args.output_path, run_key)
    if previous is not None and "samples_per_s" in previous:
        print(
            f"{args.output_path} is up to date (same model, input bins and backend): nothing to run "
            "(--overwrite redoes it)"
        )
        print_metrics(previous)
        return

    shapes = ", ".join(f"{n} x {samples}" for n, samples in dict.fromkeys(inputs.shapes.values()))
    print(f"backend {backend.name}: {args.torchscript_path} for input {shapes} float32")
    backend.load(args.torchscript_path)
    facts = {"torchscript_sha256": model_sha, "preprocess_id": input_manifest.get("preprocess_id")}
    stage = run_bins(backend, inputs, args.output_path, run_key, facts)
    first_path, first_shape = next(iter(inputs.shapes.items()))
    throughput = measure_throughput(backend, read_bin(first_path, first_shape, ""), args.warmup_runs, args.timed_runs)
    all_rows = len(inputs.shapes) * inputs.batch_size
    metrics = {
        "backend": backend.name,
        "rows_run": stage.rows,
        "stage_wall_s": stage.wall_s,
        "stage_samples_per_s": stage.rows / stage.wall_s if stage.rows else 0.0,
        "audio_s_per_s": (  # only where this run did all the work
            inputs.speech_samples / SAMPLE_RATE / stage.wall_s
            if inputs.speech_samples and stage.rows == all_rows
            else None
        ),
        "throughput_shape": list(first_shape),
        "warmup_runs": args.warmup_runs,
        "timed_runs": throughput.runs,
        "samples_per_s": throughput.samples_per_s,
        "median_run_ms": throughput.median_run_s * 1000,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    update_manifest(args.output_path, **metrics)
    print(f"{stage.bins} logits bins -> {args.output_path}")
    print_metrics(metrics)


if __name__ == "__main__":
    run_cli(main)
