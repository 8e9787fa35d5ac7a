import numpy as np
import pytest

from wav2vec2_pipeline.bins import list_bins, read_bin, read_manifest, write_bin, write_manifest
from wav2vec2_pipeline.errors import PipelineError


def test_round_trip_is_exact_raw_little_endian_float32(tmp_path) -> None:
    array = np.random.default_rng(0).standard_normal((3, 7)).astype(np.float32)
    write_bin(tmp_path / "batch_0.bin", array)
    assert (tmp_path / "batch_0.bin").stat().st_size == 3 * 7 * 4
    np.testing.assert_array_equal(read_bin(tmp_path / "batch_0.bin", (3, 7), ""), array)
    assert (tmp_path / "batch_0.bin").read_bytes() == array.astype("<f4").tobytes()


def test_float64_input_is_stored_as_float32(tmp_path) -> None:
    write_bin(tmp_path / "batch_0.bin", np.ones((2, 2)))
    assert (tmp_path / "batch_0.bin").stat().st_size == 16


def test_wrong_size_names_the_file_and_both_sizes(tmp_path) -> None:
    write_bin(tmp_path / "batch_3.bin", np.zeros((8, 10), dtype=np.float32))
    with pytest.raises(PipelineError, match=r"batch_3.bin has 320 bytes; expected 4 x 10 float32 = 160\. hint"):
        read_bin(tmp_path / "batch_3.bin", (4, 10), "hint")


def test_bins_are_listed_in_batch_order_not_text_order(tmp_path) -> None:
    for index in (10, 2, 0, 1):
        write_bin(tmp_path / f"batch_{index}.bin", np.zeros(1))
    (tmp_path / "notes.bin").write_bytes(b"")
    assert [p.name for p in list_bins(tmp_path)] == ["batch_0.bin", "batch_1.bin", "batch_2.bin", "batch_10.bin"]


def test_no_temp_file_is_left_beside_the_output(tmp_path) -> None:
    write_bin(tmp_path / "batch_0.bin", np.zeros(4))
    assert [p.name for p in tmp_path.iterdir()] == ["batch_0.bin"]


def test_manifest_round_trip_and_absence(tmp_path) -> None:
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, {"batch_1.bin": [2, 5], "batch_0.bin": [2, 7]}, batch_size=2)
    manifest = read_manifest(tmp_path)
    assert manifest is not None and manifest["bins"] == {"batch_1.bin": [2, 5], "batch_0.bin": [2, 7]}
    assert list(manifest["bins"]) == ["batch_1.bin", "batch_0.bin"] and manifest["batch_size"] == 2
