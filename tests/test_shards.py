"""Sharded stages for any scheduler: N workers write disjoint bins of one run, --merge checks and finishes it,
and the result is byte-identical to an unsharded run."""

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, fails, run_main, scored
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.manifests import InputManifest, LogitsManifest
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.shards import Shard

FAST = ("--warmup_runs", 0, "--timed_runs", 1, "--backend", "torchscript", "--threads", 1)


LAYOUT = ("--layout", "static", "--long_audio", "chunk")


def preprocess(dataset_dir, work, *extra):
    return run_main("wav2vec2_preprocess.py", "--input", dataset_dir, "--batch_size", 1, "--output", work / "in",
                    "--data_path", work / "data", *LAYOUT, *extra)  # fmt: skip


def compile_(work, traced, *extra):
    return run_main("compile.py", "--batch_size", 1, "--input_path", work / "in", "--output_path", work / "out",
                    "--torchscript_path", traced, *FAST, *extra)  # fmt: skip


def files(directory) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.bin"))}


def test_shards_then_merge_are_byte_identical_to_one_run(tmp_path, dataset, traced_path) -> None:
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    preprocess(dataset[0], whole)
    compile_(whole, traced_path)
    run_main("wav2vec2_postprocess.py", "--input", whole / "out", "--batch_size", 1, "--data_path", whole / "data")
    for k in (1, 2, 3):
        printed = preprocess(dataset[0], sharded, "--shard", f"{k}/3").stdout
        assert f"shard {k}/3:" in printed and "--merge" in printed
    assert not (sharded / "in" / "manifest.json").exists() and not (sharded / "data").exists()
    preprocess(dataset[0], sharded, "--merge")
    for k in (2, 1):  # any order, any worker
        compile_(sharded, traced_path, "--shard", f"{k}/2")
    assert not (sharded / "out" / "manifest.json").exists()
    compile_(sharded, traced_path, "--merge")
    run_main("wav2vec2_postprocess.py", "--input", sharded / "out", "--batch_size", 1, "--data_path",
             sharded / "data")  # fmt: skip

    assert files(sharded / "in") == files(whole / "in") and len(files(whole / "in")) == 8
    assert files(sharded / "out") == files(whole / "out")
    map_name = "batch_i_filename_map_bs1.json"
    assert (sharded / "data" / map_name).read_bytes() == (whole / "data" / map_name).read_bytes()
    assert scored(sharded / "data" / "report_bs1.json") == scored(whole / "data" / "report_bs1.json")
    stamps = {p.name: p.stat().st_mtime_ns for p in (sharded / "out").glob("*.bin")}
    measured = compile_(sharded, traced_path).stdout  # the figure a merge cannot give, without running a bin
    assert "stage: 8 rows" in measured and "model throughput (torchscript" in measured  # the shards' figures stand
    assert {p.name: p.stat().st_mtime_ns for p in (sharded / "out").glob("*.bin")} == stamps


def test_a_merge_names_the_shard_that_is_missing_or_incomplete(tmp_path, dataset, traced_path) -> None:
    preprocess(dataset[0], tmp_path, "--shard", "1/3")
    preprocess(dataset[0], tmp_path, "--shard", "3/3")
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", *LAYOUT, "--merge")  # fmt: skip
    assert "shard 2/3 of this run has not finished" in message and "--shard 2/3" in message
    preprocess(dataset[0], tmp_path, "--shard", "2/3")
    (tmp_path / "in" / "batch_4.bin").unlink()  # bin 4 (0-based) is shard 4 mod 3 + 1 = 2's
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", *LAYOUT, "--merge")  # fmt: skip
    assert "batch_4.bin is missing, cut short or changed since shard 2/3 finished it" in message
    assert not (tmp_path / "in" / "manifest.json").exists()


def test_a_merge_refuses_shards_of_another_run(tmp_path, dataset) -> None:
    preprocess(dataset[0], tmp_path, "--shard", "1/2", "--stride_frames", 40)
    preprocess(dataset[0], tmp_path, "--shard", "2/2", "--stride_frames", 40)
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", *LAYOUT, "--merge")  # fmt: skip
    assert "no --shard run of these inputs and settings has finished" in message
    assert "shard records of other runs: shard-1-of-2.json, shard-2-of-2.json" in message


def test_workers_of_one_run_share_the_dir_but_not_a_shard(tmp_path) -> None:
    def lock(shard: Shard | None = None):
        return RunDir(tmp_path, InputManifest, shard).lock()

    with lock(Shard(1, 2)):
        with lock(Shard(2, 2)):
            pass  # another worker of the run
        same_shard, whole_run = r"\(shard-1-of-2\) is being written by another run", r"\(shard workers \(--shard\)"
        with pytest.raises(PipelineError, match=same_shard), lock(Shard(1, 2)):
            pass
        with pytest.raises(PipelineError, match=whole_run), lock():
            pass


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "-1/2", "\u00b2/3", "1/2/3"])
def test_a_bad_shard_is_one_line(tmp_path, dataset, text) -> None:
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", "--layout", "static", "--shard", text)  # fmt: skip
    assert "--shard" in message and not (tmp_path / "in").exists()


def test_bins_go_round_robin() -> None:
    owners = [next(k for k in (1, 2, 3) if Shard(k, 3).owns(i)) for i in range(7)]
    assert owners == [1, 2, 3, 1, 2, 3, 1]


def test_the_onnx_file_is_made_once_by_racing_workers(tmp_path, traced_path) -> None:
    traced = tmp_path / "traced.pth"
    traced.write_bytes(traced_path.read_bytes())
    code = ("import sys; from pathlib import Path; from wav2vec2_pipeline.export import model_sha256, onnx_model\n"
            f"p = Path({str(traced)!r}); onnx_model(p, model_sha256(p))")  # fmt: skip
    workers = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
               for _ in range(3)]  # fmt: skip
    printed = "".join(worker.communicate()[0] for worker in workers)
    assert all(worker.returncode == 0 for worker in workers)
    assert printed.count("exporting") == 1 and len(list(tmp_path.glob("traced.*.onnx"))) == 1


def test_shard_and_merge_reruns_of_a_finished_run_leave_it_finished(tmp_path, dataset, traced_path) -> None:
    preprocess(dataset[0], tmp_path)
    for k in (1, 2):
        compile_(tmp_path, traced_path, "--shard", f"{k}/2")
    compile_(tmp_path, traced_path, "--merge")
    merged = RunDir(tmp_path / "out", LogitsManifest).require_manifest()
    again = compile_(tmp_path, traced_path, "--shard", "1/2").stdout  # a worker retried by the scheduler
    assert "is up to date" in again
    assert RunDir(tmp_path / "out", LogitsManifest).require_manifest() == merged
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    for script, args in (("compile.py", ("--batch_size", 1, "--input_path", tmp_path / "in", "--output_path",
                                         tmp_path / "out", "--torchscript_path", traced_path)),
                         ("wav2vec2_preprocess.py", ("--input", dataset[0], "--batch_size", 1, "--output",
                                                     tmp_path / "in", "--data_path", tmp_path / "data",
                                                     *LAYOUT))):  # fmt: skip
        assert "--overwrite means nothing there" in fails(script, *args, "--merge", "--overwrite")
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_unmerged_sharded_run_says_to_merge(tmp_path, dataset, traced_path) -> None:
    preprocess(dataset[0], tmp_path)
    for k in (1, 2):
        compile_(tmp_path, traced_path, "--shard", f"{k}/2")
    message = fails("wav2vec2_postprocess.py", "--input", tmp_path / "out", "--batch_size", 1, "--data_path",
                    tmp_path / "data")  # fmt: skip
    assert "did not finish (8 of 8 bins done)" in message and "with --merge instead of --shard" in message


def test_a_complete_split_merges_beside_the_records_of_an_earlier_split(tmp_path, dataset) -> None:
    for k in (1, 2):
        preprocess(dataset[0], tmp_path, "--shard", f"{k}/2")
    for k in (1, 2, 3):  # the scheduler resized the array and ran all again
        preprocess(dataset[0], tmp_path, "--shard", f"{k}/3")
    preprocess(dataset[0], tmp_path, "--merge")
    assert RunDir(tmp_path / "in", InputManifest).require_manifest().map_digest is not None


def test_a_worker_that_splits_a_running_run_otherwise_is_refused_when_it_starts(tmp_path, dataset) -> None:
    preprocess(dataset[0], tmp_path, "--shard", "1/2")  # its other worker has not finished

    def written() -> dict[str, int]:  # lock files aside: they hold nothing
        return {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file() and ".lock" not in p.name}

    before = written()
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", *LAYOUT, "--shard", "2/3")  # fmt: skip
    assert "being written by 2 shard workers of this run" in message and "--shard 2/3" in message
    assert "--shard 1/2" in message  # the first worker's command, as it was started
    assert written() == before
    preprocess(dataset[0], tmp_path, "--shard", "2/2")
    preprocess(dataset[0], tmp_path, "--merge")
    assert RunDir(tmp_path / "in", InputManifest).require_manifest().map_digest is not None


def test_a_shard_that_runs_no_bin_again_keeps_its_figures(tmp_path, dataset, traced_path) -> None:
    preprocess(dataset[0], tmp_path)
    for _ in range(2):
        for k in (1, 2):
            compile_(tmp_path, traced_path, "--shard", f"{k}/2")
    compile_(tmp_path, traced_path, "--merge")
    stage = RunDir(tmp_path / "out", LogitsManifest).require_manifest().stage
    assert stage.rows_run == 8 and stage.speech_s > 0


def test_a_refused_merge_writes_nothing(tmp_path, dataset) -> None:
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", "--layout", "static", "--merge")  # fmt: skip
    assert "no --shard run of these inputs and settings has finished" in message
    assert not (tmp_path / "in").exists() and not (tmp_path / "data").exists()
