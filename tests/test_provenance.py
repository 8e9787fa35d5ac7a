"""Outputs that cannot be tied to what produced them are refused: swapped, copied or half-rewritten logits, two
runs at once, input bins, batch maps, ground truth or vocabularies changed since the logits were made."""

import dataclasses
import json
import shutil

import pytest

from benchmarks.random_base_model import save_tiny_model
from tests.conftest import (
    FAST,
    StopsAfter,
    copy_run,
    fails,
    postprocess_fails,
    run_main,
    tree,
    write_librispeech_tree,
)
from wav2vec2_pipeline.inference import CompileOptions, compile_bins, plan_compile
from wav2vec2_pipeline.manifests import LogitsManifest
from wav2vec2_pipeline.rundir import RunDir


def swap_first_two(directory) -> None:
    (directory / "batch_0.bin").rename(directory / "tmp.bin")
    (directory / "batch_1.bin").rename(directory / "batch_0.bin")
    (directory / "tmp.bin").rename(directory / "batch_1.bin")


def test_swapped_logits_bins_of_the_same_size_are_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    swap_first_two(work / "out")
    assert "batch_0.bin does not hold what compile.py wrote there" in postprocess_fails(work)
    assert not (work / "report.json").exists()


def test_a_logits_bin_copied_in_from_another_run_is_refused(done, tmp_path, traced_path, dataset) -> None:
    work = copy_run(done, tmp_path)
    other = tmp_path / "other"
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", other / "in",
             "--data_path", other / "data", "--layout", "static", "--long_audio", "cut")  # fmt: skip
    run_main("compile.py", "--batch_size", 3, "--input_path", other / "in", "--output_path", other / "out",
             "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    shutil.copy(other / "out" / "batch_1.bin", work / "out" / "batch_1.bin")  # same name, same size
    assert "batch_1.bin does not hold what compile.py wrote there" in postprocess_fails(work)


def test_an_interrupted_compile_of_another_model_over_a_finished_dir_is_refused(done, tmp_path) -> None:
    """The dir then holds bins of two models: one from the new run, the rest from the old."""
    work = copy_run(done, tmp_path)
    other = save_tiny_model(tmp_path / "other_model", seed=3)
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", other, "--output", tmp_path / "other.pth")
    options = CompileOptions(batch_size=3, backend="torchscript", warmup_runs=0, timed_runs=1)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after the first of two bins
        run = plan_compile(work / "in", work / "out", tmp_path / "other.pth", options)
        compile_bins(dataclasses.replace(run, backend=StopsAfter(runs=1)), options, "python3 compile.py (again)")
    message = postprocess_fails(work)
    assert "did not finish (1 of 2 bins done); finish it by running the same command again" in message
    assert "compile.py (again)" in message


def test_two_compile_runs_into_one_dir_at_once_the_second_is_refused(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    before = tree(work / "out")
    with RunDir(work / "out", LogitsManifest).lock():  # the first run, still writing
        message = fails("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
                        "--torchscript_path", traced_path, "--overwrite", *FAST)  # fmt: skip
    assert "is being written by another run (pid" in message
    assert {k: v for k, v in tree(work / "out").items() if k != ".lock"} == {
        k: v for k, v in before.items() if k != ".lock"
    }


def test_an_input_bin_changed_after_preprocess_is_refused_by_compile(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    bins = work / "in"
    (bins / "batch_0.bin").write_bytes((bins / "batch_1.bin").read_bytes())  # same size, other utterances
    message = fails("compile.py", "--batch_size", 3, "--input_path", bins, "--output_path", work / "out2",
                    "--torchscript_path", traced_path, *FAST)  # fmt: skip
    assert "batch_0.bin is not the bin its manifest lists" in message


def test_logits_without_a_finished_run_or_of_the_wrong_stage_are_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    shutil.rmtree(work / "out" / ".bins")
    (work / "out" / "manifest.json").unlink()
    assert "has no manifest.json: it was not written by compile.py" in postprocess_fails(work)
    message = fails("wav2vec2_postprocess.py", "--input", work / "in", "--batch_size", 3, "--data_path", work / "data")
    assert "was written by wav2vec2_preprocess.py, not by compile.py" in message


def test_ground_truth_rewritten_by_a_preprocess_run_on_other_data_is_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    write_librispeech_tree(tmp_path / "other_ls", {"7-8-0000": 20_000})
    run_main("wav2vec2_preprocess.py", "--input", tmp_path / "other_ls", "--batch_size", 2, "--output",
             tmp_path / "other_in", "--data_path", work / "data", "--layout", "static")  # fmt: skip
    assert "is not the ground truth the batch map for batch size 3 was written with" in postprocess_fails(work)


def test_a_vocabulary_other_than_the_exported_models_is_refused(done, tmp_path, tiny_model_dir) -> None:
    work = copy_run(done, tmp_path)
    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_model_dir, reordered)
    vocab = json.loads((reordered / "vocab.json").read_text())
    vocab["E"], vocab["T"] = vocab["T"], vocab["E"]
    (reordered / "vocab.json").write_text(json.dumps(vocab))
    message = postprocess_fails(work, "--pytorch_model_dir", reordered)
    assert "is not the one the logits in" in message and "were made with" in message


def test_an_edited_batch_map_is_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    path = work / "data" / "batch_i_filename_map_bs3.json"
    batch_map = json.loads(path.read_text())
    rows = batch_map["bins"][0]["rows"]
    rows[0]["utt_id"], rows[1]["utt_id"] = rows[1]["utt_id"], rows[0]["utt_id"]  # whose text is whose
    path.write_text(json.dumps(batch_map))
    assert "is not the one the input bins of the logits" in postprocess_fails(work)


def test_a_replaced_traced_pth_does_not_borrow_the_old_records_vocabulary(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    other = save_tiny_model(tmp_path / "other_model", seed=4)
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", other, "--output", tmp_path / "other" / "traced.pth")
    stale = tmp_path / "stale"
    stale.mkdir()
    shutil.copy(traced_path.with_name("traced.pth.json"), stale / "traced.pth.json")  # record of the first model
    shutil.copy(tmp_path / "other" / "traced.pth", stale / "traced.pth")
    run_main("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out2",
             "--torchscript_path", stale / "traced.pth", "--backend", "torchscript", *FAST)  # fmt: skip
    manifest = RunDir(work / "out2", LogitsManifest).require_manifest()
    assert manifest.vocab is None  # nothing is known of this traced.pth's vocabulary: none is claimed
    args = ("--input", work / "out2", "--batch_size", 3, "--data_path", work / "data")
    message = fails("wav2vec2_postprocess.py", *args)
    assert "carry no vocabulary" in message and "--pytorch_model_dir" in message
    run_main("wav2vec2_postprocess.py", *args, "--pytorch_model_dir", other)


def test_swapped_bins_are_redone_by_the_rerun_not_declared_up_to_date(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    compile_args = ("--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
                    "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    swap_first_two(work / "out")
    rerun = run_main("compile.py", *compile_args)
    assert "up to date" not in rerun.stdout and "stage: 4 rows" in rerun.stdout
    run_main("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 3, "--data_path", work / "data",
             "--report", work / "report.json")  # fmt: skip
    bins = work / "in"
    first, second = (bins / "batch_0.bin").read_bytes(), (bins / "batch_1.bin").read_bytes()
    (bins / "batch_0.bin").write_bytes(second[: len(first)])  # same size, other content
    assert "re-run wav2vec2_preprocess.py with --overwrite" in fails("compile.py", *compile_args)
