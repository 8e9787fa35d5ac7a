import hashlib
import json

import numpy as np
import pytest

from wav2vec2_pipeline import records
from wav2vec2_pipeline.binfile import as_array, list_bins, read_bytes
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.manifests import InputManifest, LogitsManifest, StageMetrics
from wav2vec2_pipeline.rundir import RunDir


def input_dir(tmp_path) -> RunDir[InputManifest]:
    return RunDir(tmp_path, InputManifest)


def test_round_trip_is_exact_raw_little_endian_float32_with_its_digest(tmp_path) -> None:
    array = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    record = input_dir(tmp_path).put("batch_0.bin", array, key="k", rows_used=3, speech_samples=0)
    data = read_bytes(tmp_path / "batch_0.bin", (3, 7), "")
    assert data == array.astype("<f4").tobytes() and len(data) == 3 * 7 * 4
    np.testing.assert_array_equal(as_array(data, record.shape), array)
    assert record.sha256 == hashlib.sha256(data).hexdigest() and record.shape == [3, 7]


def test_wrong_size_names_the_file_and_both_sizes(tmp_path) -> None:
    (tmp_path / "batch_3.bin").write_bytes(bytes(320))
    with pytest.raises(PipelineError, match=r"batch_3.bin has 320 bytes; expected 4 x 10 float32 = 160\. hint"):
        read_bytes(tmp_path / "batch_3.bin", (4, 10), "hint")


def test_bins_are_listed_in_batch_order_not_text_order(tmp_path) -> None:
    for index in (10, 2, 0, 1):
        (tmp_path / f"batch_{index}.bin").write_bytes(b"")
    (tmp_path / "notes.bin").write_bytes(b"")
    assert [p.name for p in list_bins(tmp_path)] == ["batch_0.bin", "batch_1.bin", "batch_2.bin", "batch_10.bin"]


def test_a_bin_counts_as_done_only_with_its_record_the_same_key_and_its_full_size(tmp_path) -> None:
    run_dir = input_dir(tmp_path)
    run_dir.put("batch_0.bin", np.zeros((2, 4)), key="k1", rows_used=2, speech_samples=0)
    assert run_dir.done("batch_0.bin", "k1") is not None
    assert run_dir.done("batch_0.bin", "k2") is None  # made from other inputs
    with (tmp_path / "batch_0.bin").open("r+b") as handle:
        handle.truncate(8)
    assert run_dir.done("batch_0.bin", "k1") is None  # cut short
    (tmp_path / "batch_1.bin").write_bytes(bytes(32))
    assert run_dir.done("batch_1.bin", "k1") is None  # a bin without a record (killed before it) is redone


def test_an_unfinished_run_names_itself_and_the_command_that_finishes_it(tmp_path) -> None:
    run_dir = input_dir(tmp_path)
    run_dir.begin("key", {f"batch_{i}.bin": "k" for i in range(5)}, "python3 wav2vec2_preprocess.py --batch_size 2")
    run_dir.put("batch_0.bin", np.zeros((2, 4)), key="k", rows_used=2, speech_samples=0)
    with pytest.raises(PipelineError, match=r"did not finish \(1 of 5 bins done\).*--batch_size 2"):
        run_dir.require_manifest()


def test_a_manifest_of_the_other_stage_is_named(tmp_path) -> None:
    run_dir = input_dir(tmp_path)
    run_dir.finish(InputManifest(run_key="k", batch_size=1, bins=[], map_digest=None))
    with pytest.raises(PipelineError, match=r"written by wav2vec2_preprocess\.py, not by compile\.py"):
        RunDir(tmp_path, LogitsManifest).require_manifest()


def test_finishing_removes_bins_that_no_longer_belong_to_the_run(tmp_path) -> None:
    run_dir = input_dir(tmp_path)
    kept = run_dir.put("batch_0.bin", np.zeros((1, 4)), key="k", rows_used=1, speech_samples=0)
    run_dir.put("batch_1.bin", np.zeros((1, 4)), key="old", rows_used=1, speech_samples=0)
    run_dir.finish(InputManifest(run_key="k", batch_size=1, bins=[kept], map_digest=None))
    assert [p.name for p in list_bins(tmp_path)] == ["batch_0.bin"]
    assert run_dir.require_manifest().bins == [kept]


def test_a_second_writer_is_refused_naming_the_first(tmp_path) -> None:
    run_dir = input_dir(tmp_path)
    second, holder = input_dir(tmp_path), r"is being written by another run \(pid \d+"
    with run_dir.lock(), pytest.raises(PipelineError, match=holder), second.lock():
        pass
    with run_dir.lock():  # released when the first run ends
        pass


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("stage"), "missing field 'stage'"),
        (lambda m: m.update(batch_size="8"), "manifest.json.batch_size: expected int"),
        (lambda m: m["bins"][0].pop("sha256"), r"bins\[0\]: missing field 'sha256'"),
        (lambda m: m.update(format="wav2vec2-pipeline/bin-dir/2"), "is not of format wav2vec2-pipeline/logits-bins/3"),
    ],
)
def test_a_malformed_manifest_is_one_error_naming_the_file_and_field(tmp_path, edit, message) -> None:
    run_dir = RunDir(tmp_path, LogitsManifest)
    record = run_dir.put("batch_0.bin", np.zeros((1, 2, 3)), key="k", rows_used=1, speech_samples=0)
    stage = StageMetrics(bins_run=1, rows_run=1, wall_s=1.0, speech_s=0.0, peak_rss_mib=1.0)
    manifest = LogitsManifest(
        run_key="r", batch_size=1, input_run_key="i", model_sha256="m", backend="b", backend_options=None,
        map_digest=None, vocab=None, bins=[record], stage=stage,
    )  # fmt: skip
    raw = records.to_json(manifest)
    edit(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(PipelineError, match=message):
        run_dir.require_manifest()


def test_an_unfinished_run_recorded_by_the_previous_version_is_still_named(tmp_path) -> None:
    """Its run record has no `shards` field: the run is unfinished, not bins from elsewhere."""
    records_dir = tmp_path / ".bins"
    records_dir.mkdir()
    (records_dir / "run.json").write_text(json.dumps({
        "format": "wav2vec2-pipeline/run-start/1", "run_key": "key", "bins": {"batch_0.bin": "k"},
        "command": "python3 wav2vec2_preprocess.py --batch_size 2", "sharded": False}))  # fmt: skip
    with pytest.raises(PipelineError, match=r"did not finish \(0 of 1 bins done\); finish it by running the same "):
        RunDir(tmp_path, InputManifest).require_manifest()
