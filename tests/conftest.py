"""Fixtures: a tiny model saved like base-960h's files, a tiny LibriSpeech tree, and a script runner."""

import json
import os
import struct
import subprocess
import sys
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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "wav2vec2_pytorch_model")


@pytest.fixture(scope="session")
def traced_path(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traced") / "traced.pth"
    run_script("wav2vec2_pth2ts.py", "--pytorch_model_dir", tiny_model_dir, "--output", path)
    return path


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FixtureUtterance]]:
    root = tmp_path_factory.mktemp("LibriSpeech") / "test-clean"
    return root, write_librispeech_tree(root, FIXTURE_LENGTHS)


def path_with_this_python(bin_dir: Path) -> str:
    """PATH on which `python3` is the interpreter running the tests. A wrapper script, not a symlink: a symlink
    to a venv's python, placed outside the venv, starts Python without the venv's packages."""
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "python3"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def run_script(script: str, *args: object, cwd: Path = REPO_ROOT, check: bool = True) -> subprocess.CompletedProcess:
    """Run a top-level script as a user would; with check, fail the test showing its stderr."""
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        pytest.fail(f"{script} exited {result.returncode}:\n{result.stderr}")
    return result


@dataclass(frozen=True)
class PipelineRun:
    batch_size: int
    input_dir: Path
    output_dir: Path
    data_path: Path
    report: dict
    stdout: str


def run_pipeline(
    work: Path, dataset_dir: Path, batch_size: int, traced: Path, model_dir: Path, *layout: object
) -> PipelineRun:
    """Preprocess (with `layout` options), compile on the CPU and postprocess, as a user types them."""
    input_dir, output_dir, data_path = work / "bin_in", work / "bin_out", work / "data"
    outputs = [
        run_script("wav2vec2_preprocess.py", "--input", dataset_dir, "--batch_size", batch_size, "--output", input_dir,
                   "--data_path", data_path, "--pytorch_model_dir", model_dir, *layout),
        run_script("compile.py", "--batch_size", batch_size, "--input_path", input_dir, "--output_path", output_dir,
                   "--torchscript_path", traced, "--backend", "torchscript", "--warmup_runs", 1, "--timed_runs", 2),
        run_script("wav2vec2_postprocess.py", "--input", output_dir, "--batch_size", batch_size,
                   "--data_path", data_path, "--pytorch_model_dir", model_dir),
    ]  # fmt: skip
    report = json.loads((data_path / f"report_bs{batch_size}.json").read_text())
    return PipelineRun(batch_size, input_dir, output_dir, data_path, report, "".join(o.stdout for o in outputs))
