"""Arguments are checked before any work: out-of-range numbers and paths of the wrong kind are one line, exit
status 2, and nothing is written or touched."""

import pytest

from tests.conftest import FAST, copy_run, fails, tree, write_librispeech_tree


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
    ("wav2vec2_preprocess.py", ("--max_samples", 0), "shorter than the model's receptive field"),
    ("wav2vec2_preprocess.py", ("--stride_frames", 875), "between 0 and 874"),
    ("wav2vec2_preprocess.py", ("--layout", "static", "--long_audio", "chunk", "--stride_frames", 156),
     "between 0 and 155"),
    ("wav2vec2_preprocess.py", ("--long_audio", "chunk", "--stride_frames", -1), "between 0 and 874"),
    ("wav2vec2_preprocess.py", ("--layout", "bucket", "--bucket_samples", "48000,x"),
     "expected comma-separated sample counts"),
    ("wav2vec2_preprocess.py", ("--layout", "bucket", "--bucket_samples", "48000,0"), "a window of 0 samples"),
    ("wav2vec2_preprocess.py", ("--layout", "static", "--batch_size", 10**9), "GiB of memory"),
    ("wav2vec2_preprocess.py", ("--max_samples", 10**12), "GiB of memory"),
    ("wav2vec2_preprocess.py", ("--batch_size", 10**6, "--bin_samples", 10**12), "GiB of memory"),
    ("wav2vec2_preprocess.py", ("--bin_samples", 1000), "less than one row of 560000 samples"),
    ("wav2vec2_preprocess.py", ("--bin_samples", 0), "less than one row of 560000 samples"),
    ("wav2vec2_preprocess.py", ("--layout", "static", "--bin_samples", 10**6), "--bin_samples sizes the bins of"),
    ("wav2vec2_preprocess.py", ("--layout", "bucket", "--max_samples", 48000), "not --max_samples"),
    ("wav2vec2_preprocess.py", ("--layout", "whole_utterances"), "invalid choice"),
    ("wav2vec2_postprocess.py", ("--batch_size", 0), "--batch_size must be at least 1"),
    ("wav2vec2_preprocess.py", ("--bucket_samples", "48000"), "--bucket_samples sets the lengths of --layout bucket"),
    ("wav2vec2_preprocess.py", ("--layout", "static", "--stride_frames", 10),
     "--stride_frames means nothing without --long_audio chunk"),
    ("wav2vec2_preprocess.py", ("--long_audio", "skip", "--stride_frames", 10),
     "--stride_frames means nothing without --long_audio chunk"),
    ("wav2vec2_preprocess.py", ("--layout", "bucket", "--bucket_samples", "48000,48000"), "a length is listed twice"),
])  # fmt: skip
def test_bad_numbers_are_one_line_exit_2_and_nothing_is_written(done, tmp_path, traced_path, script, args, message):
    work = copy_run(done, tmp_path)
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


def test_a_huge_trace_length_is_refused_in_one_line(tmp_path, tiny_model_dir) -> None:
    message = fails("wav2vec2_pth2ts.py", "--pytorch_model_dir", tiny_model_dir, "--output", tmp_path / "t.pth",
                    "--max_samples", 10**12)  # fmt: skip
    assert "GiB of memory" in message and not (tmp_path / "t.pth").exists()
