"""sweep.sh as a user runs it: summary.md and throughput.png, and a second run that reuses every stage; on the real
subset in ../shared/data where it is there, else on the fixture tree."""

import os
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT, SHARED_DATA, path_with_this_python

MINI = SHARED_DATA / "librispeech-mini" / "LibriSpeech" / "test-clean"


def sweep(work: Path, dataset: Path, model_dir: Path, *batch_sizes: int) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": path_with_this_python(work / "bin"),
        "WORK": str(work / "sweep"),
        "RESULTS": str(work / "results"),
        "WARMUP_RUNS": "0",
        "TIMED_RUNS": "1",
        "BACKEND": "torchscript",
        "LONG_AUDIO": "chunk",
    }
    command = [str(REPO_ROOT / "sweep.sh"), str(dataset), str(model_dir), *map(str, batch_sizes)]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def check_results(results: Path, batch_sizes: tuple[int, ...], utterances: int) -> None:
    lines = (results / "summary.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| torchscript |")]
    assert [int(row.split("|")[2]) for row in rows] == list(batch_sizes)
    assert all(row.endswith(f"| chunk | {utterances} of {utterances} |") for row in rows)
    png = (results / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_sweep_then_again_reusing_every_stage(tmp_path, dataset, tiny_model_dir) -> None:
    """On the real subset where ../shared has it, else on the fixture tree."""
    source, utterances, batch_sizes = (MINI, 7, (2, 4)) if MINI.is_dir() else (dataset[0], len(dataset[1]), (1, 3))
    sweep(tmp_path, source, tiny_model_dir, *batch_sizes)
    check_results(tmp_path / "results", batch_sizes, utterances)
    outputs = [*sorted((tmp_path / "sweep").rglob("*.bin")), tmp_path / "sweep" / "traced.pth"]
    before = {path: path.stat().st_mtime_ns for path in outputs}

    again = sweep(tmp_path, source, tiny_model_dir, *batch_sizes)
    # export once, then preprocess and compile for each batch size: all reused
    assert again.stdout.count("traced.pth is up to date") == 1 and "traced vs eager" not in again.stdout
    assert again.stdout.count("and its batch map are up to date") == 2
    assert again.stdout.count("is up to date (same model, input bins and backend)") == 2
    assert {path: path.stat().st_mtime_ns for path in outputs} == before  # nothing rewritten
    check_results(tmp_path / "results", batch_sizes, utterances)
