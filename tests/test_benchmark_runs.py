"""The documented benchmark commands run end to end (tiny model, fixture audio) and report every variant."""

import json
import subprocess
import sys

import pytest

from benchmarks.accuracy import BACKENDS, available
from benchmarks.cpu_throughput import padding_share, stratified_sample
from benchmarks.op_profile import ATTENTION, CONVOLUTION, LINEAR, OTHER, ort_kind
from tests.conftest import REPO_ROOT, run_module_main


def run_module(module: str, *args: object, as_process: bool = False) -> str:
    """`python3 -m module args` from the repo root: in this process (run_module_main) unless `as_process`."""
    if not as_process:
        return run_module_main(module, *args).stdout
    command = [sys.executable, "-m", module, *map(str, args)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_accuracy_reports_every_layout_and_backend_per_speaker(tmp_path, tiny_model_dir, dataset) -> None:
    run_module("benchmarks.accuracy", "--model_dir", tiny_model_dir, "--data", dataset[0], "--batch_sizes", 1, 2,
               "--output", tmp_path)  # fmt: skip
    (results,) = tmp_path.glob("accuracy-*.md")
    lines = results.read_text().splitlines()
    assert "| condition | 100 | 300 |" in lines and lines[0].startswith("Measured on: ")
    rows = [line for line in lines if line.startswith("| ") and "/" in line and "condition" not in line]
    run = [name for name in BACKENDS if available(name)]
    assert len(rows) == 1 + 5 * len(run) and all(row.count(" / ") == 2 for row in rows)  # whole at bs 1, 2; 3 more
    assert sum("whole (default), bs 1 |" in row for row in rows) == len(run)
    assert len(run) >= 5, "all but openvino-bf16 run on any CPU"


def test_accuracy_as_another_cpu_class_runs_what_that_class_can(tmp_path, tiny_model_dir, dataset) -> None:
    """--as_class: the pipeline takes that class's flags (for an emulator whose CPUID is that class's), so bf16
    does not run as avx2; --whole_only and --backends cut the rows to those asked for."""
    pytest.importorskip("openvino")
    run_module("benchmarks.accuracy", "--model_dir", tiny_model_dir, "--data", dataset[0], "--batch_sizes", 2,
               "--as_class", "avx2", "--whole_only", "--backends", "openvino", "openvino-bf16", "--output", tmp_path,
               as_process=True)  # fmt: skip: it replaces the flags for the whole process
    text = (tmp_path / "accuracy-avx2-as-class.md").read_text()
    assert "Run with --as_class avx2 (flags avx2); OpenVINO saw a CPU '" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and " / " in line]
    assert [row.split(" | ")[0] for row in rows] == ["| (ref) eager HF fp32, each utterance alone",
                                                     "| openvino, whole (default), bs 2"]  # fmt: skip
    assert "Not run on this machine: openvino-bf16." in text


def test_cpu_throughput_reports_each_backend_and_variant_with_wer(tmp_path, tiny_model_dir, dataset) -> None:
    out = tmp_path / "results"
    # as a process: it measures each backend in a process of its own, started by multiprocessing's spawn
    run_module("benchmarks.cpu_throughput", "--model_dir", tiny_model_dir, "--data", dataset[0],
               "--batch_sizes", 1, 2, "--real_batch_sizes", 1, 2, "--rounds", 2,
               "--variants", "onnxruntime", "onnxruntime-window", "openvino-int8", "--output", out,
               as_process=True)  # fmt: skip
    lines = (out / "cpu_throughput.md").read_text().splitlines()

    def rows(label: str) -> list[str]:
        return [line for line in lines if line.startswith(f"| {label} |")]

    for backend, limit in (("(a) eager HF transformers", "fp32"), ("(b) onnxruntime fp32", "fp32"),
                           ("openvino-int8", "int8")):  # fmt: skip
        fixed, memory = rows(backend)
        assert fixed.count("x)") == 2 and f"| {limit} " in fixed and fixed.count("%") == 3 and memory.count("%") == 1
    for variant in ("(a) eager HF transformers, each batch padded to its longest", "(b) onnxruntime --bucket",
                    "(b) onnxruntime, 100000-sample window", "openvino-int8 --bucket"):  # fmt: skip
        (real,) = rows(variant)
        assert real.count("x)") == 2
        assert float(real.rstrip(" |").rsplit("| ", 1)[1]) >= 0  # WER, a number: --data has transcripts
    assert not any("onnxruntime-int8" in line for line in lines)
    raw = json.loads((out / "cpu_throughput.json").read_text())
    assert sorted(raw["backends"]) == ["eager", "onnxruntime", "openvino-int8"]  # one process: both onnxruntime layouts
    assert (out / "cpu_throughput.png").stat().st_size > 10_000


def test_stratified_sample_takes_one_utterance_per_length_stratum() -> None:
    lengths = {f"utt{i:03d}": 1000 * (100 - i) for i in range(100)}  # ids in the opposite order to lengths
    sample = stratified_sample(lengths, 4)
    assert sample == sorted(sample)
    assert sorted((lengths[u] // 1000 - 1) // 25 for u in sample) == [0, 1, 2, 3]  # 25 lengths per stratum
    assert stratified_sample(lengths, 4) == sample  # fixed seed


def test_padding_share_pads_each_batch_to_its_longest() -> None:
    assert padding_share([2, 4, 1, 1], 2) == pytest.approx(1 - 8 / 10)
    assert padding_share([2, 4, 1, 1], 1) == 0


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
