"""Re-runs: complete outputs are reused, interrupted ones resumed, stale ones redone or refused; inputs are known by
what they hold, not by their timestamps or paths, and only what changed is redone."""

import dataclasses
import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.random_base_model import save_tiny_model
from tests.conftest import (
    FAST,
    StopsAfter,
    copy_run,
    fails,
    run_main,
    tree,
    write_flac,
    write_librispeech_tree,
)
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
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", work / "in",
             "--data_path", work / "data", "--layout", "static")  # fmt: skip
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
    run_main("compile.py", *args, "--torchscript_path", traced_path)
    assert "is up to date" in run_main("compile.py", *args, "--torchscript_path", traced_path).stdout
    other_model = save_tiny_model(tmp_path / "other", seed=7)
    other_traced = tmp_path / "other.pth"
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", other_model, "--output", other_traced)
    before = (tmp_path / "out" / "batch_0.bin").read_bytes()
    rerun = run_main("compile.py", *args, "--torchscript_path", other_traced)
    assert "is up to date" not in rerun.stdout and "4 logits bins" in rerun.stdout
    assert (tmp_path / "out" / "batch_0.bin").read_bytes() != before


def test_postprocess_refuses_logits_of_input_bins_since_replaced(input_bins, traced_path, dataset, tmp_path) -> None:
    data_path = tmp_path / "data"
    shutil.copytree(input_bins / "data", data_path)
    run_main("compile.py", "--batch_size", 1, "--input_path", input_bins / "in", "--output_path", tmp_path / "out",
             "--torchscript_path", traced_path, "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    # preprocess again with other settings: the map now describes other bins than the logits came from
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in2",
             "--data_path", data_path, "--layout", "static", "--long_audio", "cut")  # fmt: skip
    message = fails("wav2vec2_postprocess.py", "--input", tmp_path / "out", "--batch_size", 1, "--data_path", data_path)
    assert "computed from other input bins" in message


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
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", f"{bad}/bins",
                    "--data_path", f"{bad}/data", "--layout", "static")  # fmt: skip
    assert "cannot create /proc/no_such_dir/bins" in message


# --- content, not timestamps: only what changed is redone ---


def stage_commands(source: Path, work: Path, batch_size: int, traced: Path) -> tuple[tuple, tuple]:
    """The preprocess and compile.py command lines of a run from `source` into `work`."""
    prep = ("wav2vec2_preprocess.py", "--input", source, "--batch_size", batch_size, "--output", work / "in",
            "--data_path", work / "data", "--layout", "static")  # fmt: skip
    comp = ("compile.py", "--batch_size", batch_size, "--input_path", work / "in", "--output_path", work / "out",
            "--torchscript_path", traced, *FAST)  # fmt: skip
    return prep, comp


def test_a_touched_file_changes_nothing_and_an_edited_one_redoes_only_its_bins(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 50_000, "1-2-0002": 40_000})
    prep, comp = stage_commands(ls, tmp_path, 1, traced_path)
    comp = (*comp, "--backend", "torchscript")  # int8's own case: tests/test_cpu_variants.py
    run_main(*prep)
    run_main(*comp)
    stamps = tree(tmp_path / "in") | {f"out/{k}": v for k, v in tree(tmp_path / "out").items()}
    flac = ls / "1" / "2" / "1-2-0001.flac"
    os.utime(flac, ns=(flac.stat().st_atime_ns, flac.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert "up to date" in run_main(*prep).stdout
    assert "up to date" in run_main(*comp).stdout
    write_flac(flac, 45_000, seed=11)  # now really changed
    assert "(1 bins written, 2 unchanged since an earlier run)" in run_main(*prep).stdout
    assert "stage: 1 rows in" in run_main(*comp).stdout
    after = tree(tmp_path / "in") | {f"out/{k}": v for k, v in tree(tmp_path / "out").items()}
    for name in ("batch_0.bin", "batch_2.bin", "out/batch_0.bin", "out/batch_2.bin"):
        assert after[name] == stamps[name], name
    assert after["batch_1.bin"] != stamps["batch_1.bin"] and after["out/batch_1.bin"] != stamps["out/batch_1.bin"]


def test_export_is_redone_for_new_model_contents_not_for_touched_files(tmp_path, tiny_model_dir) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    export = ("wav2vec2_pth2ts.py", "--pytorch_model_dir", model, "--output", model / "traced.pth")  # in the dir
    assert "saved" in run_main(*export).stdout
    config = model / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert "up to date" in run_main(*export).stdout
    config.write_text(json.dumps(json.loads(config.read_text()) | {"layerdrop": 0.05}))
    assert "saved" in run_main(*export).stdout


def test_an_edit_hidden_by_restoring_the_modification_time_is_still_seen(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 30_000})
    prep, _ = stage_commands(ls, tmp_path, 1, traced_path)
    run_main(*prep)
    flac = ls / "1" / "2" / "1-2-0001.flac"
    stat = flac.stat()
    write_flac(flac, 30_000, seed=99)  # same length, other audio
    os.utime(flac, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -r` would hide it
    assert "(1 bins written, 1 unchanged" in run_main(*prep).stdout


@pytest.mark.parametrize("changed", [
    ("--bin_samples", 560_000), ("--layout", "static"), ("--layout", "bucket"), ("--long_audio", "cut"),
    ("--stride_frames", 10), ("--max_samples", 60_000), ("--resample",), ("--downmix",),
])  # fmt: skip
def test_any_layout_option_changed_since_a_finished_run_redoes_it(tmp_path, changed) -> None:
    """The run key holds the whole layout: a changed option is never answered with "up to date"."""
    write_librispeech_tree(tmp_path / "ls", {"1-2-0000": 30_000, "1-2-0001": 50_000})
    args = ("--input", tmp_path / "ls", "--batch_size", 2, "--output", tmp_path / "in", "--data_path",
            tmp_path / "data")  # fmt: skip
    run_main("wav2vec2_preprocess.py", *args)
    assert "up to date" in run_main("wav2vec2_preprocess.py", *args).stdout
    assert "up to date" not in run_main("wav2vec2_preprocess.py", *args, *changed).stdout, changed


def test_other_timing_options_measure_again_without_running_a_bin(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    stamps = tree(work / "out")
    again = run_main("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
                     "--torchscript_path", traced_path, "--backend", "torchscript", "--warmup_runs", 1,
                     "--timed_runs", 2).stdout  # fmt: skip
    assert "is up to date" not in again and "1 warm-up + 2 timed runs" in again
    assert {k: v for k, v in tree(work / "out").items() if k.endswith(".bin")} == {
        k: v for k, v in stamps.items() if k.endswith(".bin")
    }


def test_a_moved_dataset_gets_its_new_paths_without_new_bins_or_logits(tmp_path, dataset, traced_path) -> None:
    ls = tmp_path / "ls"
    shutil.copytree(dataset[0], ls)
    prep, comp = stage_commands(ls, tmp_path / "w", 3, traced_path)
    run_main(*prep)
    run_main(*comp)
    moved = tmp_path / "moved"
    ls.rename(moved)
    prep_moved, _ = stage_commands(moved, tmp_path / "w", 3, traced_path)
    assert "(0 bins written" in run_main(*prep_moved).stdout
    assert "up to date" in run_main(*comp).stdout
    run_main("wav2vec2_postprocess.py", "--input", tmp_path / "w" / "out", "--batch_size", 3, "--data_path",
             tmp_path / "w" / "data")  # fmt: skip
    report = json.loads((tmp_path / "w" / "data" / "report_bs3.json").read_text())
    assert all(u["audio"].startswith(str(moved)) for u in report["utterances"])


def test_a_transcript_corrected_after_the_run_needs_no_new_logits(tmp_path, dataset, traced_path) -> None:
    ls = tmp_path / "ls"
    shutil.copytree(dataset[0], ls)
    work = tmp_path / "w"
    prep, comp = stage_commands(ls, work, 3, traced_path)
    run_main(*prep)
    run_main(*comp)
    trans = next(ls.rglob("*.trans.txt"))
    first_id = trans.read_text().split()[0]
    trans.write_text(trans.read_text().replace(first_id + " ", first_id + " CORRECTED ", 1))
    assert "(0 bins written, 2 unchanged" in run_main(*prep).stdout
    assert "up to date" in run_main(*comp).stdout
    run_main("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 3, "--data_path", work / "data")
    report = json.loads((work / "data" / "report_bs3.json").read_text())
    assert next(u for u in report["utterances"] if u["utt_id"] == first_id)["reference"].startswith("CORRECTED ")


def test_bins_from_elsewhere_read_at_another_shape_are_run_again(tmp_path, done, traced_path) -> None:
    """Bins without a manifest are taken at the shape the command names: the same bytes at another batch size
    and row length are other rows, so neither the run nor a bin of it is up to date."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in (done / "in").glob("batch_*.bin"):
        shutil.copy(path, raw / path.name)
    common = ("--input_path", raw, "--output_path", tmp_path / "out", "--torchscript_path", traced_path,
              "--backend", "torchscript", *FAST)  # fmt: skip
    run_main("compile.py", "--batch_size", 3, "--max_samples", 100_000, *common)
    printed = run_main("compile.py", "--batch_size", 1, "--max_samples", 300_000, *common).stdout
    assert "up to date" not in printed and "stage: 2 rows in" in printed
    manifest = RunDir(tmp_path / "out", LogitsManifest).require_manifest()
    assert manifest.batch_size == 1 and {tuple(b.shape[:2]) for b in manifest.bins} == {(1, 937)}
