"""The README's full-run block, run verbatim on the real LibriSpeech subset in ../shared/data."""

import json
import os
import re
import subprocess

import pytest

from tests.conftest import REPO_ROOT, SHARED_DATA, path_with_this_python
from wav2vec2_pipeline.batchmap import read_map
from wav2vec2_pipeline.model import num_frames

MINI = SHARED_DATA / "librispeech-mini" / "LibriSpeech"
SCRIPTS = ("wav2vec2_preprocess.py", "wav2vec2_pth2ts.py", "compile.py", "wav2vec2_postprocess.py")


def readme_full_run() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.search(r"<!-- full-run:start -->\n```bash\n(.*?)```\n<!-- full-run:end -->", text, re.DOTALL)
    assert match, "README.md has no full-run block"
    return match.group(1)


@pytest.mark.skipif(not MINI.is_dir(), reason=f"{MINI} not present")
def test_readme_full_run_transcribes_every_second_of_the_real_subset(tmp_path, tiny_model_dir) -> None:
    """A user's checkout: the scripts, ./LibriSpeech and ./wav2vec2_pytorch_model side by side."""
    for name in (*SCRIPTS, "wav2vec2_pipeline"):
        (tmp_path / name).symlink_to(REPO_ROOT / name)
    (tmp_path / "LibriSpeech").symlink_to(MINI)
    (tmp_path / "wav2vec2_pytorch_model").symlink_to(tiny_model_dir)
    env = {**os.environ, "PATH": path_with_this_python(tmp_path / "bin")}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_full_run()], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

    expected = {
        line.split(" ", 1)[0]: line.split(" ", 1)[1]
        for path in (MINI / "test-clean").rglob("*.trans.txt")
        for line in path.read_text().splitlines()
    }
    assert len(expected) == 7
    report = json.loads((tmp_path / "data" / "report_bs8.json").read_text())
    entries = {u["utt_id"]: u for u in report["utterances"]}
    assert len(report["utterances"]) == len(entries) == 7
    assert {utt_id: u["reference"] for utt_id, u in entries.items()} == expected
    assert {u["status"] for u in entries.values()} == {"scored"}
    assert {u["long_audio"] for u in entries.values()} == {None}  # whole utterances: none over 35 s
    assert report["summary"]["seconds_scored"] == pytest.approx(44.195) and report["summary"]["seconds_lost"] == 0
    batch_map = read_map(tmp_path / "data", 8)
    kept_frames = sum(row.keep[1] - row.keep[0] for b in batch_map.bins for row in b.rows)
    assert kept_frames == sum(num_frames(e.num_samples) for e in batch_map.utterances.values())  # every frame, once
    assert [b.samples for b in batch_map.bins] == sorted(b.samples for b in batch_map.bins)  # sorted by length
    assert all(len(b.rows) == b.height for b in batch_map.bins)  # no pad rows
    assert "chunked 0," in result.stdout and "accuracy (1 - CER)" in result.stdout
