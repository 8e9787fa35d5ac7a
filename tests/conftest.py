"""Fixtures and helpers: a tiny model saved like base-960h's files, a tiny LibriSpeech tree, a finished run to copy,
and the scripts run two ways: run_script, in a process of their own as a user runs them (for start-up, imports and
what a whole process prints), and run_main, in the test process (no interpreter start-up or torch import per run).
fails() is the one check of a refused command: exit status 2 and exactly one `error: ...` line."""

import contextlib
import importlib.util
import io
import json
import os
import runpy
import shutil
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmarks.random_base_model import save_tiny_model
from wav2vec2_pipeline.backends import TorchScriptBackend
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.model import SAMPLE_RATE

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
WORDS = ("HELLO", "WORLD", "SPEECH", "IS", "NOT", "SILENT", "HER", "LOVELY", "CHILD", "IT'S", "QUIZ")


@dataclass(frozen=True)
class FixtureUtterance:
    utt_id: str
    num_samples: int
    transcript: str


# Two speakers, lengths around the 100000-sample window: exactly at it is kept, one over is skipped.
FIXTURE_LENGTHS = {
    "100-200-0000": 24_000,
    "100-200-0001": 64_000,
    "100-200-0002": 120_000,
    "300-400-0000": 35_200,
    "300-400-0001": 100_000,
    "300-400-0002": 100_001,
}


def write_flac(path: Path, num_samples: int, seed: int, sample_rate: int = SAMPLE_RATE, channels: int = 1) -> None:
    """Tones plus noise, 16-bit FLAC: enough structure that normalisation and padding are visible."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / sample_rate
    signal = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + 0.05 * rng.standard_normal(num_samples)
    data = np.repeat(signal[:, None], channels, axis=1) if channels > 1 else signal
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sample_rate, format="FLAC", subtype="PCM_16")


def write_empty_streamed_flac(path: Path) -> None:
    """A FLAC with a STREAMINFO of unknown length and no frames, as `sox -n ... trim 0 0` writes."""
    rate_channels_bits_total = (16_000 << 44) | (0 << 41) | (15 << 36) | 0
    streaminfo = struct.pack(">HH", 4096, 4096) + bytes(6) + struct.pack(">Q", rate_channels_bits_total) + bytes(16)
    path.write_bytes(b"fLaC" + bytes([0x80, 0, 0, len(streaminfo)]) + streaminfo)


def write_librispeech_tree(root: Path, lengths: dict[str, int]) -> list[FixtureUtterance]:
    """`<spk>/<chap>/<spk>-<chap>-<utt>.flac` plus one `<spk>-<chap>.trans.txt` per chapter."""
    utterances = []
    for seed, (utt_id, num_samples) in enumerate(sorted(lengths.items())):
        speaker, chapter, _ = utt_id.split("-")
        words = np.random.default_rng(seed).choice(WORDS, size=3 + seed % 4)
        utterance = FixtureUtterance(utt_id, num_samples, " ".join(words))
        write_flac(root / speaker / chapter / f"{utt_id}.flac", num_samples, seed)
        with (root / speaker / chapter / f"{speaker}-{chapter}.trans.txt").open("a") as trans:
            trans.write(f"{utt_id} {utterance.transcript}\n")
        utterances.append(utterance)
    return utterances


class StopsAfter(TorchScriptBackend):
    """The CPU backend, stopped (as by a Ctrl-C) when it has run `runs` batches."""

    def __init__(self, runs: int) -> None:
        super().__init__(DeviceOptions())
        self.runs_left = runs

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        if self.runs_left == 0:
            raise KeyboardInterrupt
        self.runs_left -= 1
        return super().forward(batch)


# ---- the scripts, run as a command or in this process ----------------------------------------------------------


def run_script(script: str, *args: object, cwd: Path = REPO_ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run a top-level script as a user would, in a process of its own; with check, fail the test showing its
    stderr. For what only a real process shows: start-up, imports, everything it prints."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        pytest.fail(f"{script} exited {result.returncode}:\n{result.stderr}")
    return result


def run_main(script: str, *args: object, cwd: Path = REPO_ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run a top-level script in this process, as `python3 script args` runs it (its `__main__` block, so
    `run_cli`'s one-line errors and exit status), without a new interpreter's start-up and imports. Returns what
    run_script returns; anything but an exit (a bug's exception) propagates with its traceback."""
    path = str(REPO_ROOT / script)
    return _run_here([path, *map(str, args)], lambda: runpy.run_path(path, run_name="__main__"), cwd, check)


def run_module_main(module: str, *args: object, check: bool = True) -> subprocess.CompletedProcess:
    """`python3 -m module args` (from the repo root) in this process, as run_main runs a script."""
    path = importlib.util.find_spec(module).origin

    def run() -> None:
        with warnings.catch_warnings():  # a test module that imported `module` too: it runs afresh as __main__
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__")

    return _run_here([path, *map(str, args)], run, REPO_ROOT, check)


def _run_here(argv: list[str], run: Callable[[], object], cwd: Path, check: bool) -> subprocess.CompletedProcess:
    """`run` with `argv` as sys.argv, in `cwd`, its stdout and stderr captured and its exit status caught. What a
    run changes of this process is put back: the arguments, the working dir, and torch's thread count (which
    --threads sets)."""
    threads = torch.get_num_threads()
    stdout, stderr = io.StringIO(), io.StringIO()
    saved_argv, here = sys.argv, Path.cwd()
    sys.argv = list(argv)
    os.chdir(cwd)
    returncode = 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            run()
    except SystemExit as stop:
        returncode = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.chdir(here)
        torch.set_num_threads(threads)
    result = subprocess.CompletedProcess(argv, returncode, stdout.getvalue(), stderr.getvalue())
    if check and returncode != 0:
        pytest.fail(f"{Path(argv[0]).name} exited {returncode}:\n{result.stderr}")
    return result


def fails(script: str, *args: object, as_process: bool = False) -> str:
    """Run a script expected to refuse its input: exit status 2 and exactly one line on stderr, `error: ...`, no
    traceback. In this process (run_main) unless `as_process`; returns that line."""
    result = (run_script if as_process else run_main)(script, *args, check=False)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def path_with_this_python(bin_dir: Path) -> str:
    """PATH on which `python3` is the interpreter running the tests. A wrapper script, not a symlink: a symlink
    to a venv's python, placed outside the venv, starts Python without the venv's packages."""
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


# ---- shared inputs and runs -------------------------------------------------------------------------------------

FAST = ("--warmup_runs", 0, "--timed_runs", 1)
"""compile.py's timing cut to one run: for runs whose throughput figure no test reads."""


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "wav2vec2_pytorch_model")


@pytest.fixture(scope="session")
def traced_path(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wav2vec2_pth2ts.py's export of the tiny model (as a command: sweep.sh in tests/test_sweep.py)."""
    path = tmp_path_factory.mktemp("traced") / "traced.pth"
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", tiny_model_dir, "--output", path)
    return path


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FixtureUtterance]]:
    root = tmp_path_factory.mktemp("LibriSpeech") / "test-clean"
    return root, write_librispeech_tree(root, FIXTURE_LENGTHS)


@pytest.fixture(scope="session")
def done(tmp_path_factory, dataset, traced_path, tiny_model_dir) -> Path:
    """A finished bs-3 run in the Ascend guide's layout (4 utterances scored, so the second bin has 2 pad rows):
    `in` (input bins), `data` (batch map, ground truth) and `out` (logits), not yet postprocessed. Shared: a test
    that writes there works on a copy (copy_run)."""
    work = tmp_path_factory.mktemp("done")
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", work / "in",
             "--data_path", work / "data", "--pytorch_model_dir", tiny_model_dir, "--layout", "static")  # fmt: skip
    run_main("compile.py", "--batch_size", 3, "--input_path", work / "in", "--output_path", work / "out",
             "--torchscript_path", traced_path, "--backend", "torchscript", *FAST)  # fmt: skip
    return work


def copy_run(done: Path, tmp_path: Path) -> Path:
    """A copy of the finished run `done`, for a test to change."""
    shutil.copytree(done, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


def postprocess_fails(work: Path, *extra: object) -> str:
    """postprocess on the bs-3 run `work` (a copy of `done`), expected to refuse it: its one-line error."""
    return fails("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 3, "--data_path",
                 work / "data", "--report", work / "report.json", *extra)  # fmt: skip


TIMINGS = ("seconds", "audio_s_per_s", "model_audio_s_per_s")
"""What a report measures rather than derives: two runs over the same logits differ only there."""


def scored(report_path: Path) -> dict:
    """A report's content, decoding's timings aside, for comparing two runs' reports for equality."""
    report = json.loads(report_path.read_text())
    decoding = report["summary"]["decoding"]
    assert all(decoding[key] is None or decoding[key] >= 0 for key in TIMINGS)
    report["summary"]["decoding"] = {k: v for k, v in decoding.items() if k not in TIMINGS}
    return report


def tree(root: Path) -> dict[str, int]:
    """Every file under `root` with its modification time: what a refused command must leave alone."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@dataclass(frozen=True)
class PipelineRun:
    batch_size: int
    input_dir: Path
    output_dir: Path
    data_path: Path
    report: dict
    stdout: str


def run_pipeline(
    work: Path,
    dataset_dir: Path,
    batch_size: int,
    traced: Path,
    model_dir: Path,
    *layout: object,
    as_process: bool = False,
) -> PipelineRun:
    """Preprocess (with `layout` options), compile on the CPU and postprocess, as a user types them: each script in
    a process of its own with `as_process`, else in this one (run_main)."""
    run = run_script if as_process else run_main
    input_dir, output_dir, data_path = work / "bin_in", work / "bin_out", work / "data"
    outputs = [
        run("wav2vec2_preprocess.py", "--input", dataset_dir, "--batch_size", batch_size, "--output", input_dir,
            "--data_path", data_path, "--pytorch_model_dir", model_dir, *layout),
        run("compile.py", "--batch_size", batch_size, "--input_path", input_dir, "--output_path", output_dir,
            "--torchscript_path", traced, "--backend", "torchscript", "--warmup_runs", 1, "--timed_runs", 2),
        run("wav2vec2_postprocess.py", "--input", output_dir, "--batch_size", batch_size,
            "--data_path", data_path, "--pytorch_model_dir", model_dir),
    ]  # fmt: skip
    report = json.loads((data_path / f"report_bs{batch_size}.json").read_text())
    return PipelineRun(batch_size, input_dir, output_dir, data_path, report, "".join(o.stdout for o in outputs))
