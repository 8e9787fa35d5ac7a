"""Where the time goes at one batch size: seconds and GFLOP/s per kind of work, side by side, for eager
PyTorch and ONNX Runtime, fp32 and dynamic int8 (torch's on the Linear layers, ours on ONNX MatMuls).

    python3 -m benchmarks.op_profile [--model_dir DIR] [--batch_size 8]

It shows how far each kind of work is from this machine's sgemm rate, and how much time goes to work that
no matrix unit speeds up (norms, activations, copies): the part of the gap to the sgemm-bound limit that
faster matrix products cannot close. Random base-size weights unless --model_dir; fixed 100000-sample rows;
wall time is the median of --rounds interleaved runs (sgemm measured in each round), the split by kind comes
from one profiled run.
"""

import argparse
import functools
import json
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import Wav2Vec2ForCTC

from benchmarks.cpu_throughput import RowFlops, eager_logits, fixed_batch, flops_per_row, gemm_gflops
from benchmarks.random_base_model import save_random_base_model
from wav2vec2_pipeline.backends import OnnxRuntimeBackend, OnnxRuntimeInt8Backend
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import save_torchscript, trace
from wav2vec2_pipeline.model import MAX_SAMPLES, load_ctc_model

LINEAR, ATTENTION, CONVOLUTION, OTHER = "linear layers", "attention products", "convolutions", "everything else"
TORCH_KINDS = {
    "aten::addmm": LINEAR,
    "quantized::linear_dynamic": LINEAR,
    "aten::_scaled_dot_product_flash_attention_for_cpu": ATTENTION,
    "aten::mkldnn_convolution": CONVOLUTION,
}
"""Profiler op names (self time) -> kind; attention here includes its softmax, as ONNX Runtime's does below."""
ORT_MATRIX_OPS = {"MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}


def ort_kind(op: str, node: str) -> str:
    """ONNX nodes keep the torch module path in their names: products inside attention but outside its
    q/k/v/out projections are the score and weighted-sum products."""
    if op == "Conv":
        return CONVOLUTION
    if "/attention/" in node and "_proj/" not in node and (op in ORT_MATRIX_OPS or op == "Softmax"):
        return ATTENTION
    return LINEAR if op in ORT_MATRIX_OPS or op == "DynamicQuantizeLinear" else OTHER


def torch_split(run: Callable[[], object]) -> Counter:
    """Seconds per kind in one profiled run of an eager model."""
    with torch.profiler.profile() as profile:
        run()
    split: Counter = Counter()
    for event in profile.key_averages():
        split[TORCH_KINDS.get(event.key, OTHER)] += event.self_cpu_time_total / 1e6
    return split


def ort_split(backend: OnnxRuntimeBackend, traced: Path, batch: np.ndarray, workdir: Path) -> Counter:
    """Seconds per kind in one profiled run (after a warm-up) of a session set up as the backend sets it up."""
    options = backend.session_options()
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / "ort_profile")
    session = backend.session_for(backend.onnx_model(traced), options)
    for _ in range(2):
        session.run(None, {"input_values": batch})
    events = json.loads(Path(session.end_profiling()).read_text())
    last_run = max(event["ts"] for event in events if event.get("name") == "model_run")
    split: Counter = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= last_run:
            split[ort_kind(event["args"]["op_name"], event["name"])] += event["dur"] / 1e6
    return split


def quantized_linear(model: Wav2Vec2ForCTC) -> torch.nn.Module:
    with warnings.catch_warnings():  # torch.ao.quantization is deprecated in favour of torchao, not installed here
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def cells(split: Counter, wall_s: float, flops: RowFlops, batch_size: int, sgemm: float) -> list[str]:
    work = {LINEAR: flops.linear, ATTENTION: flops.attention, CONVOLUTION: flops.convolution}
    total = flops.total * batch_size / wall_s / 1e9
    rows = [f"{wall_s:.2f}", f"{total:.0f} ({total / sgemm:.0%})"]
    for kind, flop in work.items():
        rate = flop * batch_size / split[kind] / 1e9
        rows.append(f"{split[kind]:.2f} s, {rate:.0f} GFLOP/s ({rate / sgemm:.0%})")
    rows.append(f"{split[OTHER]:.2f} s ({split[OTHER] / sum(split.values()):.0%} of the time)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", help="a model dir (default: random weights of base-960h's size)")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="op-profile-") as tmp:
        workdir = Path(tmp)
        if args.model_dir is None:
            args.model_dir = str(save_random_base_model(workdir / "base_random"))
        model = load_ctc_model(args.model_dir)
        traced = workdir / "traced.pth"
        save_torchscript(trace(model, MAX_SAMPLES), traced)
        batch = fixed_batch(args.batch_size)
        backends = {cls.name: cls(DeviceOptions()) for cls in (OnnxRuntimeBackend, OnnxRuntimeInt8Backend)}
        for backend in backends.values():
            backend.load(traced)
        eager = {"eager fp32": model, "eager, torch dynamic int8 Linear": quantized_linear(model)}
        runs = {name: functools.partial(eager_logits, module, batch) for name, module in eager.items()} | {
            name: functools.partial(backend.forward, batch) for name, backend in backends.items()
        }
        for run in runs.values():
            run()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in runs}
        sgemm_rates = []
        for _ in range(args.rounds):
            sgemm_rates.append(gemm_gflops())  # side by side with the runs: the machine's speed drifts
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        splits = {name: torch_split(runs[name]) for name in eager} | {
            name: ort_split(backend, traced, batch, workdir) for name, backend in backends.items()
        }
    flops = flops_per_row(MAX_SAMPLES, model.config)
    sgemm = statistics.median(sgemm_rates)
    columns = [cells(splits[name], statistics.median(times[name]), flops, args.batch_size, sgemm) for name in runs]
    labels = ["wall s (median)", "GFLOP/s (share of sgemm)", LINEAR, ATTENTION, CONVOLUTION, OTHER]
    print(
        f"batch {args.batch_size} x {MAX_SAMPLES} samples; sgemm {sgemm:.0f} GFLOP/s (median of the rounds) with "
        f"{torch.get_num_threads()} threads; {flops.total / 1e9:.1f} GFLOP per row (int8 products counted as the "
        "fp32 work they replace)\n"
    )
    print(f"| | {' | '.join(runs)} |\n| --- |{' --- |' * len(runs)}")
    for index, label in enumerate(labels):
        print(f"| {label} | {' | '.join(column[index] for column in columns)} |")


if __name__ == "__main__":
    main()
