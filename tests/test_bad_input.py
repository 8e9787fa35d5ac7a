"""Each bad input stops its stage with a clear message and a non-zero exit, leaving no partial output."""

from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import copy_run, fails, run_main, write_flac, write_librispeech_tree


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def dotfiles(path: Path) -> list[str]:
    return sorted(p.name for p in path.glob(".*"))


def test_compile_with_another_batch_size_than_preprocess(done, traced_path, tmp_path) -> None:
    input_dir = done / "in"
    message = fails("compile.py", "--batch_size", 4, "--input_path", input_dir, "--output_path", tmp_path / "out",
                    "--torchscript_path", traced_path)  # fmt: skip
    assert "written with --batch_size 3; you passed 4" in message
    assert files_under(tmp_path / "out") == []


def test_postprocess_with_another_batch_size_than_preprocess(done, tmp_path) -> None:
    data_path = done / "data"
    message = fails("wav2vec2_postprocess.py", "--input", tmp_path, "--batch_size", 4, "--data_path", data_path)
    assert "batch_i_filename_map_bs4.json not found" in message and "batch_i_filename_map_bs3.json" in message
    assert not (data_path / "report_bs4.json").exists()


def test_truncated_input_bin_stops_compile_before_anything_is_written(done, traced_path, tmp_path) -> None:
    input_dir = copy_run(done, tmp_path) / "in"
    with (input_dir / "batch_1.bin").open("r+b") as handle:
        handle.truncate(1_199_996)
    message = fails("compile.py", "--batch_size", 3, "--input_path", input_dir, "--output_path", tmp_path / "out",
                    "--torchscript_path", traced_path)  # fmt: skip
    assert "batch_1.bin has 1199996 bytes; expected 3 x 100000 float32 = 1200000" in message
    assert files_under(tmp_path / "out") == []


def test_truncated_output_bin_stops_postprocess_without_a_report(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    output_dir, data_path = work / "out", work / "data"
    with (output_dir / "batch_0.bin").open("r+b") as handle:
        handle.truncate(1000)
    report = tmp_path / "report.json"
    message = fails("wav2vec2_postprocess.py", "--input", output_dir, "--batch_size", 3, "--data_path", data_path,
                    "--report", report)  # fmt: skip
    assert "batch_0.bin has 1000 bytes; expected 3 x 312 x 32 float32 = 119808" in message
    assert not report.exists()


def test_missing_transcript_line(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "in", {"1-2-0000": 800, "1-2-0001": 900})
    (tmp_path / "in" / "1" / "2" / "1-2.trans.txt").write_text("1-2-0000 HI\n")
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "in", "--batch_size", 2,
                    "--output", tmp_path / "bins", "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "1-2-0001.flac" in message and "no transcript line" in message
    assert files_under(tmp_path / "bins") == [] and files_under(tmp_path / "data") == []


def test_non_16khz_audio_is_named_and_nothing_is_written(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "in", {"1-2-0000": 800, "1-2-0001": 900})
    write_flac(tmp_path / "in" / "1" / "2" / "1-2-0001.flac", 900, seed=3, sample_rate=22_050)
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "in", "--batch_size", 1,
                    "--output", tmp_path / "bins", "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "1-2-0001.flac is sampled at 22050 Hz" in message
    assert files_under(tmp_path / "bins") == [] and files_under(tmp_path / "data") == []


def test_empty_input_dir(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "in", "--batch_size", 1,
                    "--output", tmp_path / "bins", "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "no .flac files under" in message
    assert files_under(tmp_path / "bins") == []


def test_corrupt_audio_mid_run_is_named_and_the_rerun_redoes_only_the_bins_left(tmp_path, traced_path) -> None:
    write_librispeech_tree(tmp_path / "in", {"1-2-0000": 800, "1-2-0001": 900, "1-2-0002": 700})
    args = ("--input", tmp_path / "in", "--batch_size", 1, "--output", tmp_path / "bins", "--data_path",
            tmp_path / "data", "--layout", "static")  # fmt: skip  (id order: one utterance's new length moves no other)
    run_main("wav2vec2_preprocess.py", *args)
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "bins").glob("*.bin")}
    flac = tmp_path / "in" / "1" / "2" / "1-2-0001.flac"
    flac.write_bytes(flac.read_bytes()[:-200])  # header intact, audio frames cut off
    message = fails("wav2vec2_preprocess.py", *args)
    assert "1-2-0001.flac" in message and ("cannot decode" in message or "decodes to" in message)
    refused = fails("compile.py", "--batch_size", 1, "--input_path", tmp_path / "bins", "--output_path",
                    tmp_path / "out", "--torchscript_path", traced_path)  # fmt: skip
    assert "did not finish (2 of 3 bins done)" in refused and "wav2vec2_preprocess.py" in refused
    assert files_under(tmp_path / "out") == []

    write_flac(flac, 1000, seed=9)  # fixed: new audio for that one utterance
    rerun = run_main("wav2vec2_preprocess.py", *args)
    assert "(1 bins written, 2 unchanged since an earlier run)" in rerun.stdout
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "bins").glob("*.bin")}
    assert {n: after[n] for n in ("batch_0.bin", "batch_2.bin")} == {
        n: stamps[n] for n in ("batch_0.bin", "batch_2.bin")
    }
    assert not list((tmp_path / "bins").glob(".*.tmp"))  # no temp file left


def test_stereo_audio_is_named_and_nothing_is_written(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "in", {"1-2-0000": 800})
    write_flac(tmp_path / "in" / "1" / "2" / "1-2-0000.flac", 800, seed=3, channels=2)
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "in", "--batch_size", 1,
                    "--output", tmp_path / "bins", "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "1-2-0000.flac has 2 channels" in message
    assert files_under(tmp_path / "bins") == [] and files_under(tmp_path / "data") == []


def test_audio_that_is_not_finite_is_refused_naming_the_file(tmp_path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    sf.write(folder / "ok.wav", 0.1 * np.ones(20_000), 16_000)
    sf.write(folder / "nan.wav", np.full(20_000, np.nan, dtype=np.float32), 16_000, subtype="FLOAT")
    message = fails("wav2vec2_preprocess.py", "--input", folder, "--batch_size", 2, "--output", tmp_path / "in",
                    "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "nan.wav holds samples that are not finite numbers" in message


def test_audio_that_gives_no_row_at_all_is_refused_by_preprocess(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "ls", {"1-2-0000": 300, "1-2-0001": 120_000})
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "ls", "--batch_size", 2, "--output",
                    tmp_path / "in", "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    assert "gives a row: 1 are too short for one frame (400 samples) and 1 longer than the window" in message
    assert not (tmp_path / "in").exists()
