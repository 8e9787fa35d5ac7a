"""Outputs that cannot be tied to what produced them are refused; arguments are checked before any work.

Each test is a hostile user's move against the four scripts: swapped, copied or half-rewritten logits, two
runs at once, touched or edited audio, out-of-range numbers, paths of the wrong kind, broken model files.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.random_base_model import save_tiny_model
from tests.conftest import (
    REPO_ROOT,
    StopsAfter,
    path_with_this_python,
    run_script,
    write_empty_streamed_flac,
    write_flac,
    write_librispeech_tree,
)
from wav2vec2_pipeline.inference import CompileOptions, compile_bins, plan_compile
from wav2vec2_pipeline.manifests import InputManifest, LogitsManifest
from wav2vec2_pipeline.postprocess import utterance_logits
from wav2vec2_pipeline.rundir import RunDir

SCRIPTS = ("wav2vec2_preprocess.py", "wav2vec2_pth2ts.py", "compile.py", "wav2vec2_postprocess.py",
           "wav2vec2_summary.py")  # fmt: skip
FAST = ("--warmup_runs", 0, "--timed_runs", 1)


def fails(script: str, *args: object) -> str:
    result = run_script(script, *args, check=False)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


def tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its modification time: what a refused command must leave alone."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def done(tmp_path_factory, dataset, traced_path, tiny_model_dir) -> Path:
    """A finished bs-3 run (4 utterances scored, so the second bin has 2 pad rows): input bins, logits, map."""
    work = tmp_path_factory.mktemp("trusted")
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", work / "in",
               "--data_path", work / "data", "--pytorch_model_dir", tiny_model_dir)  # fmt: skip
    run_script("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
               "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    return work


def stage_commands(source: Path, work: Path, batch_size: int, traced: Path) -> tuple[tuple, tuple]:
    """The preprocess and compile.py command lines of a run from `source` into `work`."""
    prep = ("wav2vec2_preprocess.py", "--input", source, "--batch_size", batch_size, "--output", work / "in",
            "--data_path", work / "data")  # fmt: skip
    comp = ("compile.py", "--batch_size", batch_size, "--input_path", work / "in", "--output_path", work / "out",
            "--torchscript_path", traced, *FAST)  # fmt: skip
    return prep, comp


def copy_run(done: Path, tmp_path: Path) -> Path:
    shutil.copytree(done, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def postprocess(work: Path, *extra: object) -> str:
    return fails("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 3, "--data_path",
                 work / "data", "--report", work / "report.json", *extra)  # fmt: skip


# ---- 1. logits it cannot vouch for -------------------------------------------------------------------------


def test_swapped_logits_bins_of_the_same_size_are_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    out = work / "out"
    (out / "batch_0.bin").rename(out / "tmp.bin")
    (out / "batch_1.bin").rename(out / "batch_0.bin")
    (out / "tmp.bin").rename(out / "batch_1.bin")
    assert "batch_0.bin does not hold what compile.py wrote there" in postprocess(work)
    assert not (work / "report.json").exists()


def test_a_logits_bin_copied_in_from_another_run_is_refused(done, tmp_path, traced_path, dataset) -> None:
    work = copy_run(done, tmp_path)
    other = tmp_path / "other"
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", other / "in",
               "--data_path", other / "data", "--long_audio", "cut")  # fmt: skip
    run_script("compile.py", "--batch_size", 3, "--input_path", other / "in", "--output_path", other / "out",
               "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    shutil.copy(other / "out" / "batch_1.bin", work / "out" / "batch_1.bin")  # same name, same size
    assert "batch_1.bin does not hold what compile.py wrote there" in postprocess(work)


def test_an_interrupted_compile_of_another_model_over_a_finished_dir_is_refused(done, tmp_path) -> None:
    """The dir then holds bins of two models: one from the new run, the rest from the old."""
    work = copy_run(done, tmp_path)
    other = save_tiny_model(tmp_path / "other_model", seed=3)
    run_script("wav2vec2_pth2ts.py", "--pytorch_model_dir", other, "--output", tmp_path / "other.pth")
    options = CompileOptions(batch_size=3, backend="torchscript", warmup_runs=0, timed_runs=1)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C after the first of two bins
        run = plan_compile(work / "in", work / "out", tmp_path / "other.pth", options)
        compile_bins(dataclasses.replace(run, backend=StopsAfter(runs=1)), options, "python3 compile.py (again)")
    message = postprocess(work)
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
    assert "has no manifest.json: it was not written by compile.py" in postprocess(work)
    message = fails("wav2vec2_postprocess.py", "--input", work / "in", "--batch_size", 3, "--data_path", work / "data")
    assert "was written by wav2vec2_preprocess.py, not by compile.py" in message


def test_ground_truth_rewritten_by_a_preprocess_run_on_other_data_is_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    write_librispeech_tree(tmp_path / "other_ls", {"7-8-0000": 20_000})
    run_script("wav2vec2_preprocess.py", "--input", tmp_path / "other_ls", "--batch_size", 2, "--output",
               tmp_path / "other_in", "--data_path", work / "data")  # fmt: skip
    assert "is not the ground truth the batch map for batch size 3 was written with" in postprocess(work)


def test_a_vocabulary_other_than_the_exported_models_is_refused(done, tmp_path, tiny_model_dir) -> None:
    work = copy_run(done, tmp_path)
    reordered = tmp_path / "reordered"
    shutil.copytree(tiny_model_dir, reordered)
    vocab = json.loads((reordered / "vocab.json").read_text())
    vocab["E"], vocab["T"] = vocab["T"], vocab["E"]
    (reordered / "vocab.json").write_text(json.dumps(vocab))
    message = postprocess(work, "--pytorch_model_dir", reordered)
    assert "is not the one the logits in" in message and "were made with" in message


def test_an_edited_batch_map_is_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    path = work / "data" / "batch_i_filename_map_bs3.json"
    batch_map = json.loads(path.read_text())
    rows = batch_map["bins"][0]["rows"]
    rows[0]["utt_id"], rows[1]["utt_id"] = rows[1]["utt_id"], rows[0]["utt_id"]  # whose text is whose
    path.write_text(json.dumps(batch_map))
    assert "is not the one the input bins of the logits" in postprocess(work)


def test_a_replaced_traced_pth_does_not_borrow_the_old_records_vocabulary(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    other = save_tiny_model(tmp_path / "other_model", seed=4)
    run_script("wav2vec2_pth2ts.py", "--pytorch_model_dir", other, "--output", tmp_path / "other" / "traced.pth")
    stale = tmp_path / "stale"
    stale.mkdir()
    shutil.copy(traced_path.with_name("traced.pth.json"), stale / "traced.pth.json")  # record of the first model
    shutil.copy(tmp_path / "other" / "traced.pth", stale / "traced.pth")
    run_script("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out2",
               "--torchscript_path", stale / "traced.pth", "--backend", "torchscript", *FAST)  # fmt: skip
    manifest = RunDir(work / "out2", LogitsManifest).require_manifest()
    assert manifest.vocab is None  # nothing is known of this traced.pth's vocabulary: none is claimed
    args = ("--input", work / "out2", "--batch_size", 3, "--data_path", work / "data")
    message = fails("wav2vec2_postprocess.py", *args)
    assert "carry no vocabulary" in message and "--pytorch_model_dir" in message
    run_script("wav2vec2_postprocess.py", *args, "--pytorch_model_dir", other)


def test_swapped_bins_are_redone_by_the_rerun_not_declared_up_to_date(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    compile_args = ("--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
                    "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    out = work / "out"
    (out / "batch_0.bin").rename(out / "tmp.bin")
    (out / "batch_1.bin").rename(out / "batch_0.bin")
    (out / "tmp.bin").rename(out / "batch_1.bin")
    rerun = run_script("compile.py", *compile_args)
    assert "up to date" not in rerun.stdout and "stage: 4 rows" in rerun.stdout
    run_script("wav2vec2_postprocess.py", "--input", out, "--batch_size", 3, "--data_path", work / "data",
               "--report", work / "report.json")  # fmt: skip
    bins = work / "in"
    first, second = (bins / "batch_0.bin").read_bytes(), (bins / "batch_1.bin").read_bytes()
    (bins / "batch_0.bin").write_bytes(second[: len(first)])  # same size, other content
    assert "re-run wav2vec2_preprocess.py with --overwrite" in fails("compile.py", *compile_args)


def test_a_transcript_corrected_after_the_run_needs_no_new_logits(done, tmp_path, dataset, traced_path) -> None:
    ls = tmp_path / "ls"
    shutil.copytree(dataset[0], ls)
    work = tmp_path / "w"
    prep, comp = stage_commands(ls, work, 3, traced_path)
    run_script(*prep)
    run_script(*comp)
    trans = next(ls.rglob("*.trans.txt"))
    first_id = trans.read_text().split()[0]
    trans.write_text(trans.read_text().replace(first_id + " ", first_id + " CORRECTED ", 1))
    assert "(0 bins written, 2 unchanged" in run_script(*prep).stdout
    assert "up to date" in run_script(*comp).stdout
    run_script("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 3, "--data_path", work / "data")
    report = json.loads((work / "data" / "report_bs3.json").read_text())
    assert next(u for u in report["utterances"] if u["utt_id"] == first_id)["reference"].startswith("CORRECTED ")


# ---- 2. inputs as people save them (trees, transcripts and audio headers: tests/test_real_files.py) ---------


def test_case_of_the_references_does_not_count_as_errors(done, tmp_path, tiny_model_dir, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 50_000})
    reports = {}
    for case in ("upper", "lower"):
        trans = ls / "1" / "2" / "1-2.trans.txt"
        text = trans.read_text()
        trans.write_text(text.lower() if case == "lower" else text.upper())
        run_script("wav2vec2_preprocess.py", "--input", ls, "--batch_size", 2, "--output", tmp_path / case / "in",
                   "--data_path", tmp_path / case / "data")  # fmt: skip
        run_script("compile.py", "--batch_size", 2, "--input_path", tmp_path / case / "in", "--output_path",
                   tmp_path / case / "out", "--torchscript_path", traced_path, *FAST)  # fmt: skip
        run_script("wav2vec2_postprocess.py", "--input", tmp_path / case / "out", "--batch_size", 2, "--data_path",
                   tmp_path / case / "data")  # fmt: skip
        reports[case] = json.loads((tmp_path / case / "data" / "report_bs2.json").read_text())
    assert reports["lower"]["summary"]["wer"] == reports["upper"]["summary"]["wer"]
    assert reports["lower"]["summary"]["normalizer"] == "upper"
    assert reports["lower"]["utterances"][0]["reference"].islower()  # the report keeps what the file says


def test_zero_length_and_too_short_audio_is_transcribed_as_empty_and_reported(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 300, "1-2-0002": 1})
    write_empty_streamed_flac(ls / "1" / "2" / "1-2-0002.flac")  # as sox writes an empty recording
    result = run_script("wav2vec2_preprocess.py", "--input", ls, "--batch_size", 2, "--output", tmp_path / "in",
                        "--data_path", tmp_path / "data")  # fmt: skip
    assert "empty 2 utterances too short for one frame (400 samples)" in result.stdout
    run_script("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path", tmp_path / "out",
               "--torchscript_path", traced_path, *FAST)  # fmt: skip
    printed = run_script("wav2vec2_postprocess.py", "--input", tmp_path / "out", "--batch_size", 2, "--data_path",
                         tmp_path / "data").stdout  # fmt: skip
    assert "empty 2" in printed
    report = json.loads((tmp_path / "data" / "report_bs2.json").read_text())
    empty = [u for u in report["utterances"] if u["outcome"] == "empty"]
    assert [u["hypothesis"] for u in empty] == ["", ""] and {u["status"] for u in empty} == {"scored"}
    assert all(u["word_errors"]["deletions"] == len(u["reference"].split()) for u in empty)


@pytest.mark.parametrize(("change", "message"), [
    ({"vocab_size": 31}, "it has 32 tokens but config.json's vocab_size (the logits' width) is 31"),
    ({"pad_token_id": 4}, "the CTC blank <pad> has id 0 but config.json's pad_token_id is 4"),
])  # fmt: skip
def test_a_vocabulary_that_does_not_fit_the_config_is_refused_at_export_and_postprocess(
    done, tmp_path, tiny_model_dir, change, message
) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps(config | change))
    assert message in fails("wav2vec2_pth2ts.py", "--pytorch_model_dir", model, "--output", tmp_path / "t.pth")
    assert not (tmp_path / "t.pth").exists()
    assert message in postprocess(copy_run(done, tmp_path), "--pytorch_model_dir", model)


# ---- 3. arguments checked before any work ---------------------------------------------------------------------


@pytest.mark.parametrize(("script", "args", "message"), [
    ("compile.py", ("--timed_runs", 0), "--timed_runs must be between 1 and"),
    ("compile.py", ("--warmup_runs", -1), "--warmup_runs must be between 0 and"),
    ("compile.py", ("--warmup_runs", 10**20), "--warmup_runs must be between 0 and"),
    ("compile.py", ("--timed_runs", 10**22), "--timed_runs must be between 1 and"),
    ("compile.py", ("--threads", 0), "--threads must be between 1 and"),
    ("compile.py", ("--threads", 100_000), "--threads must be between 1 and"),
    ("compile.py", ("--device_id", -1), "--device_id must be 0 or more"),
    ("compile.py", ("--batch_size", 0), "--batch_size must be at least 1"),
    ("compile.py", ("--batch_size", "3.5"), "invalid int value"),
    ("compile.py", ("--backend", "tpu"), "invalid choice"),
    ("wav2vec2_preprocess.py", ("--batch_size", -2), "--batch_size must be at least 1"),
    ("wav2vec2_preprocess.py", ("--max_samples", 399), "shorter than the model's receptive field (400 samples"),
    ("wav2vec2_preprocess.py", ("--max_samples", -1), "shorter than the model's receptive field"),
    ("wav2vec2_preprocess.py", ("--long_audio", "chunk", "--stride_frames", 156), "between 0 and 155"),
    ("wav2vec2_preprocess.py", ("--long_audio", "chunk", "--stride_frames", -1), "between 0 and 155"),
    ("wav2vec2_preprocess.py", ("--bucket", "--bucket_samples", "48000,x"), "expected comma-separated sample counts"),
    ("wav2vec2_preprocess.py", ("--bucket", "--bucket_samples", "48000,0"), "a window of 0 samples"),
    ("wav2vec2_preprocess.py", ("--batch_size", 10**9), "GiB of memory"),
    ("wav2vec2_preprocess.py", ("--max_samples", 10**12), "GiB of memory"),
    ("wav2vec2_postprocess.py", ("--batch_size", 0), "--batch_size must be at least 1"),
    ("wav2vec2_preprocess.py", ("--bucket_samples", "48000"), "--bucket_samples means nothing without --bucket"),
    ("wav2vec2_preprocess.py", ("--stride_frames", 10), "--stride_frames means nothing without --long_audio chunk"),
    ("wav2vec2_preprocess.py", ("--bucket", "--bucket_samples", "48000,48000"), "a length is listed twice"),
])  # fmt: skip
def test_bad_numbers_are_one_line_exit_2_and_nothing_is_written(done, tmp_path, traced_path, script, args, message):
    work = copy_run(done, tmp_path)
    before = tree(work)
    base = {
        "compile.py": ("--batch_size", 3, "--input_path", work / "in", "--output_path", work / "new_out",
                       "--torchscript_path", traced_path, "--backend", "torchscript"),
        "wav2vec2_preprocess.py": ("--batch_size", 3, "--input", work / "ls", "--output", work / "new_in",
                                   "--data_path", work / "new_data"),
        "wav2vec2_postprocess.py": ("--batch_size", 3, "--input", work / "out", "--data_path", work / "data"),
    }[script]  # fmt: skip
    write_librispeech_tree(work / "ls", {"1-2-0000": 20_000})
    before = tree(work)
    assert message in fails(script, *base, *args)
    assert tree(work) == before


def test_paths_of_the_wrong_kind_are_refused_without_touching_the_previous_run(
    done, tmp_path, traced_path, tiny_model_dir
) -> None:
    work = copy_run(done, tmp_path)
    (work / "a_file").write_text("")
    before = tree(work)
    compile_args = ("--batch_size", 3, "--torchscript_path", traced_path, *FAST)
    cases = [
        ("compile.py", ("--input_path", work / "in", "--output_path", work / "in", *compile_args), "overlap"),
        ("compile.py", ("--input_path", work / "in", "--output_path", work / "in" / "sub", *compile_args), "overlap"),
        ("compile.py", ("--input_path", work / "in", "--output_path", work / "a_file", *compile_args), "is a file"),
        ("compile.py", ("--input_path", work / "a_file", "--output_path", work / "o", *compile_args), "is a file"),
        ("compile.py", ("--input_path", work / "in", "--output_path", work / "o", "--batch_size", 3,
                        "--torchscript_path", work / "in"), "is a dir"),
        ("wav2vec2_preprocess.py", ("--input", work / "a_file", "--batch_size", 3, "--output", work / "o"),
         "is a file"),
        ("wav2vec2_preprocess.py", ("--input", work / "in", "--batch_size", 3, "--output", work / "a_file"),
         "--output"),
        ("wav2vec2_postprocess.py", ("--input", work / "out", "--batch_size", 3, "--data_path", work / "data",
                                     "--report", work / "data"), "--report"),
        ("wav2vec2_postprocess.py", ("--input", work / "out", "--batch_size", 3, "--data_path", work / "a_file"),
         "is a file"),
        ("wav2vec2_pth2ts.py", ("--pytorch_model_dir", work / "a_file", "--output", work / "t.pth"), "is a file"),
        ("wav2vec2_pth2ts.py", ("--pytorch_model_dir", work / "in", "--output", work / "data"), "--output"),
        ("wav2vec2_postprocess.py", ("--input", work / "out", "--batch_size", 3, "--data_path", work / "data",
                                     "--report", work / "data" / "batch_i_filename_map_bs3.json"),
         "is one of this stage's inputs"),
        ("wav2vec2_postprocess.py", ("--input", work / "out", "--batch_size", 3, "--data_path", work / "data",
                                     "--report", work / "data" / "ground_truth_texts.txt"),
         "is one of this stage's inputs"),
        ("wav2vec2_pth2ts.py", ("--pytorch_model_dir", tiny_model_dir, "--output", tiny_model_dir / "config.json"),
         "exists and is not an earlier output of this kind"),
    ]  # fmt: skip
    for script, args, message in cases:
        assert message in fails(script, *args), (script, args)
    assert tree(work) == before  # in particular, the input dir's manifest is still there


def test_a_feature_extractor_for_another_rate_is_refused_before_the_previous_run_is_touched(
    done, tmp_path, tiny_model_dir
) -> None:
    work = copy_run(done, tmp_path)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    settings = json.loads((model / "preprocessor_config.json").read_text())
    (model / "preprocessor_config.json").write_text(json.dumps(settings | {"sampling_rate": 8000}))
    write_librispeech_tree(work / "ls", {"1-2-0000": 20_000})
    before = tree(work)
    message = fails("wav2vec2_preprocess.py", "--input", work / "ls", "--batch_size", 3, "--output", work / "in",
                    "--data_path", work / "data", "--pytorch_model_dir", model)  # fmt: skip
    assert "sampling_rate 8000" in message and tree(work) == before


def test_outputs_never_overwrite_what_they_did_not_write(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    (work / "notes.txt").write_text("mine")
    before = tree(work)
    for flag, target in (("--report", work / "out" / "manifest.json"), ("--report", work / "notes.txt"),
                         ("--transcripts", work / "notes.txt"), ("--ctm", work / "notes.txt")):  # fmt: skip
        assert "exists and is not an earlier output of this kind" in postprocess(work, flag, target)
    assert tree(work) == before


def test_outputs_are_not_written_over_binary_or_other_text_files(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    (work / "victim.pth").write_bytes(traced_path.read_bytes())
    (work / "notes.txt").write_text("\nIMPORTANT: keep\n")
    before = tree(work)
    for flag, target in (("--ctm", work / "victim.pth"), ("--transcripts", work / "victim.pth"),
                         ("--ctm", work / "notes.txt"), ("--transcripts", work / "in" / "batch_0.bin")):  # fmt: skip
        assert "exists and is not an earlier output of this kind" in postprocess(work, flag, target)
    assert "is a file; pass a dir" in postprocess(work, "--srt", work / "notes.txt" / "subtitles")
    assert "cannot create /proc/no_such_dir" in postprocess(work, "--srt", "/proc/no_such_dir")
    assert tree(work) == before


@pytest.mark.parametrize("foreign", ["logits", "user manifest", "stray bins"])
def test_preprocess_never_writes_over_a_dir_it_did_not_write_even_with_overwrite(done, tmp_path, dataset, foreign):
    work = copy_run(done, tmp_path)
    target = {"logits": work / "out", "user manifest": work / "mine", "stray bins": work / "mine"}[foreign]
    if foreign == "user manifest":
        target.mkdir()
        (target / "manifest.json").write_text('{"my": "data"}')
    if foreign == "stray bins":
        target.mkdir()
        (target / "batch_7.bin").write_bytes(b"mine")
    before = tree(work)
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", target,
                    "--data_path", work / "data2", "--overwrite")  # fmt: skip
    expected = {"logits": "was written by compile.py", "user manifest": "is not of format",
                "stray bins": "bin(s) that no run of this pipeline wrote"}[foreign]  # fmt: skip
    assert expected in message and tree(work) == before


def test_an_edit_hidden_by_restoring_the_modification_time_is_still_seen(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 30_000})
    prep, _ = stage_commands(ls, tmp_path, 1, traced_path)
    run_script(*prep)
    flac = ls / "1" / "2" / "1-2-0001.flac"
    stat = flac.stat()
    write_flac(flac, 30_000, seed=99)  # same length, other audio
    os.utime(flac, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `touch -r` would hide it
    assert "(1 bins written, 1 unchanged" in run_script(*prep).stdout


def test_other_timing_options_measure_again_without_running_a_bin(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    stamps = tree(work / "out")
    again = run_script("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
                       "--torchscript_path", traced_path, "--backend", "torchscript", "--warmup_runs", 1,
                       "--timed_runs", 2).stdout  # fmt: skip
    assert "is up to date" not in again and "1 warm-up + 2 timed runs" in again
    assert {k: v for k, v in tree(work / "out").items() if k.endswith(".bin")} == {
        k: v for k, v in stamps.items() if k.endswith(".bin")
    }


def test_two_outputs_naming_one_file_are_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    assert "must name different files" in postprocess(work, "--transcripts", work / "report.json")


def test_audio_that_is_not_finite_is_refused_naming_the_file(tmp_path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    sf.write(folder / "ok.wav", 0.1 * np.ones(20_000), 16_000)
    sf.write(folder / "nan.wav", np.full(20_000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    message = fails("wav2vec2_preprocess.py", "--input", folder, "--batch_size", 2, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data")  # fmt: skip
    assert "nan.wav holds samples that are not finite numbers" in message


def test_a_moved_dataset_gets_its_new_paths_without_new_bins_or_logits(done, tmp_path, dataset, traced_path) -> None:
    ls = tmp_path / "ls"
    shutil.copytree(dataset[0], ls)
    prep, comp = stage_commands(ls, tmp_path / "w", 3, traced_path)
    run_script(*prep)
    run_script(*comp)
    moved = tmp_path / "moved"
    ls.rename(moved)
    prep_moved, _ = stage_commands(moved, tmp_path / "w", 3, traced_path)
    assert "(0 bins written" in run_script(*prep_moved).stdout
    assert "up to date" in run_script(*comp).stdout
    run_script("wav2vec2_postprocess.py", "--input", tmp_path / "w" / "out", "--batch_size", 3, "--data_path",
               tmp_path / "w" / "data")  # fmt: skip
    report = json.loads((tmp_path / "w" / "data" / "report_bs3.json").read_text())
    assert all(u["audio"].startswith(str(moved)) for u in report["utterances"])


def test_a_closed_pipe_ends_quietly(tmp_path, dataset) -> None:
    command = (f"{sys.executable} {REPO_ROOT / 'wav2vec2_preprocess.py'} --input {dataset[0]} --batch_size 1 "
               f"--output {tmp_path / 'in'} --data_path {tmp_path / 'data'} | head -c 1")  # fmt: skip
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert "Traceback" not in result.stderr


def test_a_huge_trace_length_is_refused_in_one_line(tmp_path, tiny_model_dir) -> None:
    message = fails("wav2vec2_pth2ts.py", "--pytorch_model_dir", tiny_model_dir, "--output", tmp_path / "t.pth",
                    "--max_samples", 10**12)  # fmt: skip
    assert "GiB of memory" in message and not (tmp_path / "t.pth").exists()


def test_audio_that_gives_no_row_at_all_is_refused_by_preprocess(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "ls", {"1-2-0000": 300, "1-2-0001": 120_000})
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "ls", "--batch_size", 2, "--output",
                    tmp_path / "in", "--data_path", tmp_path / "data")  # fmt: skip
    assert "gives a row: 1 are too short for one frame and 1 longer than the window" in message
    assert not (tmp_path / "in").exists()


@pytest.mark.parametrize("broken", ["config.json", "vocab.json", "preprocessor_config.json"])
def test_broken_model_files_are_named_by_preprocess_and_postprocess(done, tmp_path, tiny_model_dir, broken) -> None:
    work = copy_run(done, tmp_path)
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / broken).write_text('{"truncated": ')
    if broken != "preprocessor_config.json":
        assert f"{model / broken} cannot be read as JSON" in postprocess(work, "--pytorch_model_dir", model)
    if broken != "vocab.json":
        message = fails("wav2vec2_preprocess.py", "--input", work / "in", "--batch_size", 3, "--output",
                        tmp_path / "o", "--data_path", tmp_path / "d", "--pytorch_model_dir", model)  # fmt: skip
        assert f"{model / broken} cannot be read as JSON" in message


# ---- 4. the test command in a venv ------------------------------------------------------------------------------


def test_python3_on_the_test_path_is_this_interpreter_with_its_packages(tmp_path) -> None:
    env = {**os.environ, "PATH": path_with_this_python(tmp_path / "bin")}
    printed = subprocess.run(["python3", "-c", "import sys, numpy; print(sys.prefix)"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    assert printed == sys.prefix


# ---- 5. content, not timestamps; only what changed is redone; postprocess streams ----------------------------


def test_a_touched_file_changes_nothing_and_an_edited_one_redoes_only_its_bins(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 50_000, "1-2-0002": 40_000})
    prep, comp = stage_commands(ls, tmp_path, 1, traced_path)
    comp = (*comp, "--backend", "torchscript")  # int8's own case: tests/test_cpu_variants.py
    run_script(*prep)
    run_script(*comp)
    stamps = tree(tmp_path / "in") | {f"out/{k}": v for k, v in tree(tmp_path / "out").items()}
    flac = ls / "1" / "2" / "1-2-0001.flac"
    os.utime(flac, ns=(flac.stat().st_atime_ns, flac.stat().st_mtime_ns + 10**9))  # touched, same bytes
    assert "up to date" in run_script(*prep).stdout
    assert "up to date" in run_script(*comp).stdout
    write_flac(flac, 45_000, seed=11)  # now really changed
    assert "(1 bins written, 2 unchanged since an earlier run)" in run_script(*prep).stdout
    assert "stage: 1 rows in" in run_script(*comp).stdout
    after = tree(tmp_path / "in") | {f"out/{k}": v for k, v in tree(tmp_path / "out").items()}
    for name in ("batch_0.bin", "batch_2.bin", "out/batch_0.bin", "out/batch_2.bin"):
        assert after[name] == stamps[name], name
    assert after["batch_1.bin"] != stamps["batch_1.bin"] and after["out/batch_1.bin"] != stamps["out/batch_1.bin"]


def test_export_is_redone_for_new_model_contents_not_for_touched_files(tmp_path, tiny_model_dir) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    export = ("wav2vec2_pth2ts.py", "--pytorch_model_dir", model, "--output", model / "traced.pth")  # in the dir
    assert "saved" in run_script(*export).stdout
    config = model / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))
    assert "up to date" in run_script(*export).stdout
    config.write_text(json.dumps(json.loads(config.read_text()) | {"layerdrop": 0.05}))
    assert "saved" in run_script(*export).stdout


def test_postprocess_holds_one_utterance_at_a_time(done, monkeypatch) -> None:
    """Each utterance comes out as soon as its last row has passed: the first before the second bin is read."""
    from wav2vec2_pipeline import batches, postprocess

    read = []
    real = postprocess.read_bytes
    monkeypatch.setattr(postprocess, "read_bytes", lambda path, *a: read.append(path.name) or real(path, *a))
    batch_map = batches.read_map(done / "data", 3)
    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    stream = utterance_logits(done / "out", batch_map, manifest)
    first, logits = next(stream)
    assert read == ["batch_0.bin"] and first == batch_map.bins[0].rows[0].utt_id and logits.shape[1] == 32
    assert len(list(stream)) == 3 and read == ["batch_0.bin", "batch_1.bin"]


# ---- 6. figures and start-up ------------------------------------------------------------------------------------


def test_the_stage_figures_are_printed_and_recorded_on_a_run_with_pad_rows(done) -> None:
    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    inputs = RunDir(done / "in", InputManifest).require_manifest()
    assert [b.rows_used for b in inputs.bins] == [3, 1]  # the last bin has 2 pad rows
    assert manifest.stage.rows_run == 4 and manifest.stage.audio_s_per_s > 0
    assert manifest.stage.speech_s == pytest.approx(sum(b.speech_samples for b in inputs.bins) / 16_000)
    assert manifest.throughput is not None and manifest.throughput.samples_per_s > 0


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_torch_or_transformers(script) -> None:
    heavy = ("torch", "transformers", "matplotlib", "onnxruntime")
    code = (f"import runpy, sys; sys.argv = [{script!r}, '--help']\n"
            f"try:\n    runpy.run_path({str(REPO_ROOT / script)!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "usage:" in result.stdout and result.stdout.strip().endswith("[]")


def test_arrays_of_the_logits_stream_match_the_bins(done) -> None:
    batch_map_path = done / "data" / "batch_i_filename_map_bs3.json"
    first_row = json.loads(batch_map_path.read_text())["bins"][0]["rows"][0]
    from wav2vec2_pipeline.batchmap import read_map

    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    utt_id, logits = next(utterance_logits(done / "out", read_map(done / "data", 3), manifest))
    raw = np.fromfile(done / "out" / "batch_0.bin", dtype="<f4").reshape(3, 312, 32)
    start, end = first_row["keep"]
    assert utt_id == first_row["utt_id"]
    np.testing.assert_array_equal(logits, raw[0, start:end])


def test_bins_from_elsewhere_read_at_another_shape_are_run_again(tmp_path, done, traced_path) -> None:
    """Bins without a manifest are taken at the shape the command names: the same bytes at another batch size
    and row length are other rows, so neither the run nor a bin of it is up to date."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for path in (done / "in").glob("batch_*.bin"):
        shutil.copy(path, raw / path.name)
    common = ("--input_path", raw, "--output_path", tmp_path / "out", "--torchscript_path", traced_path,
              "--backend", "torchscript", *FAST)  # fmt: skip
    run_script("compile.py", "--batch_size", 3, "--max_samples", 100_000, *common)
    printed = run_script("compile.py", "--batch_size", 1, "--max_samples", 300_000, *common).stdout
    assert "up to date" not in printed and "stage: 2 rows in" in printed
    manifest = RunDir(tmp_path / "out", LogitsManifest).require_manifest()
    assert manifest.batch_size == 1 and {tuple(b.shape[:2]) for b in manifest.bins} == {(1, 937)}
