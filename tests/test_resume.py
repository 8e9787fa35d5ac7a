"""Re-runs: complete outputs are reused, interrupted ones resumed, stale ones redone or refused."""

import dataclasses
import errno
import os
import shutil

import numpy as np
import pytest

from benchmarks.random_base_model import save_tiny_model
from tests.conftest import StopsAfter, run_script
from wav2vec2_pipeline.backends import TorchScriptBackend
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes
from wav2vec2_pipeline.inference import CompileOptions, compile_bins, plan_compile
from wav2vec2_pipeline.manifests import LogitsManifest
from wav2vec2_pipeline.rundir import RunDir


@pytest.fixture(scope="module")
def input_bins(tmp_path_factory, dataset):
    work = tmp_path_factory.mktemp("resume")
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", work / "in",
               "--data_path", work / "data")  # fmt: skip
    return work


def compile_with(backend: TorchScriptBackend, input_bins, traced_path, out, **options):
    options = CompileOptions(batch_size=1, backend="torchscript", warmup_runs=0, timed_runs=1, **options)
    run = dataclasses.replace(plan_compile(input_bins / "in", out, traced_path, options), backend=backend)
    return compile_bins(run, options, "python3 compile.py ...")


def test_an_interrupted_compile_resumes_with_the_bins_it_had_not_finished(input_bins, traced_path, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        compile_with(StopsAfter(runs=2), input_bins, traced_path, out)
    assert sorted(p.name for p in out.glob("*.bin")) == ["batch_0.bin", "batch_1.bin"]
    with pytest.raises(PipelineError, match=r"did not finish \(2 of 4 bins done\)"):
        RunDir(out, LogitsManifest).require_manifest()  # nothing downstream takes it as done
    first_two = {name: (out / name).read_bytes() for name in ("batch_0.bin", "batch_1.bin")}

    result = compile_with(StopsAfter(runs=3), input_bins, traced_path, out)  # 2 bins left + 1 timed run
    assert result.manifest.stage.rows_run == 2 and len(result.manifest.bins) == 4
    assert {name: (out / name).read_bytes() for name in first_two} == first_two

    full = TorchScriptBackend(DeviceOptions())
    full.load(traced_path)
    for name in first_two:  # the resumed bins hold what an uninterrupted run writes
        batch = np.fromfile(input_bins / "in" / name, dtype="<f4").reshape(1, 100_000)
        expected = full.to_host(full.forward(full.to_device(batch)))
        np.testing.assert_array_equal(np.fromfile(out / name, dtype="<f4").reshape(expected.shape), expected)


def test_a_ctrl_c_during_the_timed_runs_loses_no_bin(input_bins, traced_path, tmp_path) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        compile_with(StopsAfter(runs=4), input_bins, traced_path, out)  # every bin, then stopped timing
    assert RunDir(out, LogitsManifest).require_manifest().throughput is None  # finished, figures to come
    result = compile_with(StopsAfter(runs=1), input_bins, traced_path, out)  # one timed run, no bin again
    assert result.manifest.throughput is not None and result.manifest.stage.rows_run == 4


def test_compile_redoes_an_output_dir_holding_another_model_logits(input_bins, traced_path, tmp_path) -> None:
    args = ("--batch_size", 1, "--input_path", input_bins / "in", "--output_path", tmp_path / "out",
            "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    run_script("compile.py", *args, "--torchscript_path", traced_path)
    assert "is up to date" in run_script("compile.py", *args, "--torchscript_path", traced_path).stdout
    other_model = save_tiny_model(tmp_path / "other", seed=7)
    other_traced = tmp_path / "other.pth"
    run_script("wav2vec2_pth2ts.py", "--pytorch_model_dir", other_model, "--output", other_traced)
    before = (tmp_path / "out" / "batch_0.bin").read_bytes()
    rerun = run_script("compile.py", *args, "--torchscript_path", other_traced)
    assert "is up to date" not in rerun.stdout and "4 logits bins" in rerun.stdout
    assert (tmp_path / "out" / "batch_0.bin").read_bytes() != before


def test_postprocess_refuses_logits_of_input_bins_since_replaced(input_bins, traced_path, dataset, tmp_path) -> None:
    data_path = tmp_path / "data"
    shutil.copytree(input_bins / "data", data_path)
    run_script("compile.py", "--batch_size", 1, "--input_path", input_bins / "in", "--output_path", tmp_path / "out",
               "--torchscript_path", traced_path, "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    # preprocess again with other settings: the map now describes other bins than the logits came from
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in2",
               "--data_path", data_path, "--long_audio", "cut")  # fmt: skip
    result = run_script("wav2vec2_postprocess.py", "--input", tmp_path / "out", "--batch_size", 1,
                        "--data_path", data_path, check=False)  # fmt: skip
    assert result.returncode == 2 and "computed from other input bins" in result.stderr


def test_a_full_disk_is_reported_with_the_path_and_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    real_fdopen = os.fdopen

    def full_disk(fd, mode):
        handle = real_fdopen(fd, mode)
        handle.write = lambda data: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device"))
        return handle

    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(PipelineError, match=r"cannot write .*batch_0\.bin: No space left on device\. Check free space"):
        atomic_write_bytes(tmp_path / "batch_0.bin", b"1234")
    assert list(tmp_path.iterdir()) == []


def test_an_output_dir_that_cannot_be_created_is_a_clear_error(dataset) -> None:
    bad = "/proc/no_such_dir"  # not creatable, even by root
    result = run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1,
                        "--output", f"{bad}/bins", "--data_path", f"{bad}/data", check=False)  # fmt: skip
    assert result.returncode == 2 and "cannot create /proc/no_such_dir/bins" in result.stderr
    assert "Traceback" not in result.stderr
