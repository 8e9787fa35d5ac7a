"""The scripts as commands, each in a process of its own as a user starts it: --help without the heavy imports,
a refused input as one `error: ...` line and exit status 2 with nothing else printed, a closed pipe ended
quietly, and `python3` on the PATH of tests that run a shell being this interpreter with its packages.

Elsewhere the scripts mostly run in the test process (conftest.run_main), which shows neither start-up costs nor
what an import prints; wav2vec2_distributed.py's one-line error as a process is in tests/test_distributed.py."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, copy_run, fails, path_with_this_python, write_flac, write_librispeech_tree

SCRIPTS = ("wav2vec2_preprocess.py", "wav2vec2_pth2ts.py", "compile.py", "wav2vec2_postprocess.py",
           "wav2vec2_summary.py")  # fmt: skip


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_importing_torch_or_transformers(script) -> None:
    heavy = ("torch", "transformers", "matplotlib", "onnxruntime")
    code = (f"import runpy, sys; sys.argv = [{script!r}, '--help']\n"
            f"try:\n    runpy.run_path({str(REPO_ROOT / script)!r}, run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "usage:" in result.stdout and result.stdout.strip().endswith("[]")


def truncate(path, size: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(size)


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_script_refuses_bad_input_in_one_line_as_a_command(
    script, tmp_path, done, traced_path, tiny_model_dir
) -> None:
    """Past its argument checks, into the work (and the imports) where the input turns out bad."""
    if script == "wav2vec2_preprocess.py":
        write_librispeech_tree(tmp_path / "ls", {"1-2-0000": 800})
        write_flac(tmp_path / "ls" / "1" / "2" / "1-2-0000.flac", 800, seed=3, channels=2)
        args = ("--input", tmp_path / "ls", "--batch_size", 1, "--output", tmp_path / "bins", "--data_path",
                tmp_path / "data")  # fmt: skip
        expected = "1-2-0000.flac has 2 channels"
    elif script == "wav2vec2_pth2ts.py":
        model = tmp_path / "model"
        shutil.copytree(tiny_model_dir, model)
        config = json.loads((model / "config.json").read_text())
        (model / "config.json").write_text(json.dumps(config | {"vocab_size": 31}))
        args = ("--pytorch_model_dir", model, "--output", tmp_path / "t.pth")
        expected = "it has 32 tokens but config.json's vocab_size (the logits' width) is 31"
    elif script == "compile.py":
        work = copy_run(done, tmp_path)
        truncate(work / "in" / "batch_1.bin", 1_199_996)
        args = ("--batch_size", 3, "--input_path", work / "in", "--output_path", tmp_path / "out",
                "--torchscript_path", traced_path)  # fmt: skip
        expected = "batch_1.bin has 1199996 bytes; expected 3 x 100000 float32 = 1200000"
    elif script == "wav2vec2_postprocess.py":
        work = copy_run(done, tmp_path)
        truncate(work / "out" / "batch_0.bin", 1000)
        args = ("--input", work / "out", "--batch_size", 3, "--data_path", work / "data")
        expected = "batch_0.bin has 1000 bytes; expected 3 x 312 x 32 float32 = 119808"
    else:
        (tmp_path / "runs").mkdir()
        args = ("--output_root", tmp_path / "runs", "--dataset", "test", "--results", tmp_path / "results")
        expected = "no finished runs under"
    assert expected in fails(script, *args, as_process=True)
    assert not (tmp_path / "out").exists() and not (tmp_path / "bins").exists() and not (tmp_path / "t.pth").exists()


def test_a_closed_pipe_ends_quietly(tmp_path, dataset) -> None:
    command = (f"{sys.executable} {REPO_ROOT / 'wav2vec2_preprocess.py'} --input {dataset[0]} --batch_size 1 "
               f"--output {tmp_path / 'in'} --data_path {tmp_path / 'data'} | head -c 1")  # fmt: skip
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert "Traceback" not in result.stderr


def test_python3_on_the_test_path_is_this_interpreter_with_its_packages(tmp_path) -> None:
    env = {**os.environ, "PATH": path_with_this_python(tmp_path / "bin")}
    printed = subprocess.run(["python3", "-c", "import sys, numpy; print(sys.prefix)"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    assert printed == sys.prefix
