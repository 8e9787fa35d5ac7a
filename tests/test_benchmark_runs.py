"""The documented benchmark commands run end to end (tiny model, fixture audio) and report every variant."""

import subprocess
import sys

import pytest

from benchmarks.op_profile import ATTENTION, CONVOLUTION, LINEAR, OTHER, ort_kind
from tests.conftest import REPO_ROOT


def run_module(module: str, *args: object) -> str:
    command = [sys.executable, "-m", module, *map(str, args)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_cpu_throughput_reports_each_variant_with_wer(tmp_path, tiny_model_dir, dataset) -> None:
    out = tmp_path / "results"
    run_module("benchmarks.cpu_throughput", "--model_dir", tiny_model_dir, "--data", dataset[0],
               "--batch_sizes", 1, 2, "--real_batch_sizes", 2, "--rounds", 2, "--variants", "onnxruntime",
               "--output", out)  # fmt: skip
    table = (out / "cpu_throughput.md").read_text()
    for label in ("(a) eager HF transformers", "(b) torchscript, as shipped", "onnxruntime + buckets"):
        fixed, real, other = [line for line in table.splitlines() if line.startswith(f"| {label} |")]
        assert fixed.count("x)") == 2 and real.count("x)") == 1
        wer = float(other.rstrip(" |").rsplit("| ", 1)[1])  # a number, not n/a: --data has transcripts
        assert wer >= 0
    assert "onnxruntime-int8" not in table
    assert (out / "cpu_throughput.png").stat().st_size > 10_000


def test_op_profile_splits_time_by_kind(tiny_model_dir) -> None:
    printed = run_module("benchmarks.op_profile", "--model_dir", tiny_model_dir, "--batch_size", 2, "--rounds", 1)
    header = next(line for line in printed.splitlines() if line.startswith("| |"))
    assert header.count("|") == 6  # four variants side by side
    for kind in (LINEAR, ATTENTION, CONVOLUTION, OTHER):
        assert f"| {kind} |" in printed


@pytest.mark.parametrize(
    ("op", "node", "kind"),
    [
        ("Conv", "/model/wav2vec2/encoder/pos_conv_embed/conv/Conv_kernel_time", CONVOLUTION),
        ("MatMul", "/model/wav2vec2/encoder/0/attention/q_proj/MatMul_kernel_time", LINEAR),
        ("FusedMatMul", "/model/wav2vec2/encoder/0/attention/MatMul/MatMulScaleFusion/_kernel_time", ATTENTION),
        ("Softmax", "/model/wav2vec2/encoder/3/attention/Softmax_kernel_time", ATTENTION),
        ("MatMul", "/model/wav2vec2/encoder/0/feed_forward/output_dense/MatMul_kernel_time", LINEAR),
        (
            "DynamicQuantizeLinear",
            "/model/wav2vec2/encoder/5/final_layer_norm/LayerNormalization_output_0_QuantizeLinear_kernel_time",
            LINEAR,
        ),
        ("LayerNormalization", "/model/wav2vec2/encoder/0/layer_norm/LayerNorm_kernel_time", OTHER),
    ],
)
def test_onnx_nodes_are_split_into_kinds_of_work(op, node, kind) -> None:
    assert ort_kind(op, node) == kind
