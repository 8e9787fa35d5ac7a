"""Any audio in (manifests, plain folders, other rates and channels, recordings empty or too short for a frame),
transcripts people can use out (JSON lines with word times, SubRip, CTM), and scoring with or without references,
whatever their letter case."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import (
    FAST,
    SHARED_DATA,
    fails,
    run_main,
    write_empty_streamed_flac,
    write_flac,
    write_librispeech_tree,
)
from wav2vec2_pipeline.outputs import Word, ctm, srt

TRAINED_MODEL = SHARED_DATA.parent / "models" / "wav2vec2-espeak-small"
ESPEAK_LONG = SHARED_DATA / "espeak-test" / "LibriSpeech" / "test-clean" / "8003"


def run_all(work: Path, source: Path, traced: Path, *preprocess: object, batch_size: int = 2) -> dict:
    """The three data stages on `source`; returns the report, and leaves transcripts beside it."""
    run_main("wav2vec2_preprocess.py", "--input", source, "--batch_size", batch_size, "--output", work / "in",
             "--data_path", work / "data", *preprocess)  # fmt: skip
    run_main("compile.py", "--batch_size", batch_size, "--input_path", work / "in", "--output_path", work / "out",
             "--torchscript_path", traced, *FAST)  # fmt: skip
    outputs = ("--srt", work / "srt", "--ctm", work / "words.ctm")
    printed = run_main("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", batch_size,
                       "--data_path", work / "data", *outputs).stdout  # fmt: skip
    report = json.loads((work / "data" / f"report_bs{batch_size}.json").read_text())
    return report | {"printed": printed}


def transcripts_of(work: Path, batch_size: int = 2) -> dict[str, dict]:
    lines = (work / "data" / f"transcripts_bs{batch_size}.jsonl").read_text().splitlines()
    return {entry["id"]: entry for entry in map(json.loads, lines)}


def test_a_jsonl_manifest_with_audio_outside_its_dir_and_some_lines_without_text(tmp_path, traced_path) -> None:
    elsewhere = tmp_path / "recordings"
    write_flac(elsewhere / "a.flac", 30_000, seed=1)
    write_flac(tmp_path / "set" / "clips" / "b.flac", 40_000, seed=2)
    write_flac(tmp_path / "set" / "c.flac", 20_000, seed=3)
    manifest = tmp_path / "set" / "manifest.jsonl"
    manifest.write_text(
        json.dumps({"audio_filepath": str(elsewhere / "a.flac"), "text": "hello world", "duration": 1.875}) + "\n"
        + json.dumps({"audio_filepath": "clips/b.flac", "text": "its quiz", "id": "bee"}) + "\n\n"
        + json.dumps({"audio_filepath": "c.flac"}) + "\n"
    )  # fmt: skip
    report = run_all(tmp_path / "w", manifest, traced_path)
    entries = {u["utt_id"]: u for u in report["utterances"]}
    assert set(entries) == {f"{str(elsewhere / 'a')[1:]}", "bee", "c"}
    assert entries["bee"]["audio"] == str(tmp_path / "set" / "clips" / "b.flac")
    assert entries["c"]["status"] == "transcribed" and entries["c"]["reference"] is None
    assert report["summary"]["utterances_scored"] == 2 and report["summary"]["utterances_without_reference"] == 1
    assert report["summary"]["wer"] is not None
    assert set(transcripts_of(tmp_path / "w")) == set(entries)
    truth = (tmp_path / "w" / "data" / "ground_truth_texts.txt").read_text().splitlines()
    assert sorted(line.split(" ", 1)[0] for line in truth) == sorted(set(entries) - {"c"})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "no audio"}', "'audio_filepath' must be a string"),
        ('{"audio_filepath": "missing.flac"}', "missing.flac not found"),
        ("not json", "not a JSON object"),
        ('{"audio_filepath": "b.flac", "id": "two words"}', "must be printable, without spaces"),
        ('{"audio_filepath": "b.flac", "duration": "long"}', "'duration' must be a number"),
        ('{"audio_filepath": "b.flac", "id": "/tmp/escape"}', "must be printable, without spaces, and a relative"),
        ('{"audio_filepath": "b.flac", "id": "x/../../escape"}', "without '.' or '..' parts"),
        ('{"audio_filepath": "b.flac", "id": "a\\u0000b"}', "must be printable"),
        ('{"audio_filepath": "b.flac", "text": "  "}', "'text' is empty"),
        ('{"audio_filepath": "b.flac", "offset": 1.5}', "'offset' (a segment of a longer file) is not supported"),
        ('{"audio_filepath": "./a.flac", "id": "again"}', "is also on line 1; list each recording once"),
    ],
)
def test_a_bad_manifest_line_is_named(tmp_path, line, message) -> None:
    write_flac(tmp_path / "a.flac", 16_000, seed=1)
    write_flac(tmp_path / "b.flac", 16_000, seed=2)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "a.flac"}) + "\n" + line + "\n")
    error = fails("wav2vec2_preprocess.py", "--input", manifest, "--batch_size", 1, "--output", tmp_path / "in",
                  "--data_path", tmp_path / "data")  # fmt: skip
    assert f"{manifest}:2: " in error and message in error
    assert not (tmp_path / "in").exists()


def test_a_folder_without_transcripts_is_transcribed_only(tmp_path, traced_path) -> None:
    folder = tmp_path / "calls"
    rng = np.random.default_rng(0)
    for relative, samples in (("2024/monday/one.wav", 30_000), ("2024/tuesday/two take.wav", 50_000),
                              ("three.ogg", 20_000)):  # fmt: skip
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(folder / relative, 0.1 * rng.standard_normal(samples), 16_000)
    report = run_all(tmp_path / "w", folder, traced_path)
    assert "no WER: no utterance has both a transcript and a reference" in report["printed"]
    ids = {"2024/monday/one", "2024/tuesday/two_take", "three"}
    assert {u["utt_id"] for u in report["utterances"]} == ids
    assert {u["status"] for u in report["utterances"]} == {"transcribed"} and report["summary"]["wer"] is None
    transcripts = transcripts_of(tmp_path / "w")
    assert set(transcripts) == ids
    for entry in transcripts.values():
        assert entry["text"] == " ".join(w["word"] for w in entry["words"])
    assert sorted(str(p.relative_to(tmp_path / "w" / "srt")) for p in (tmp_path / "w" / "srt").rglob("*.srt")) == [
        "2024/monday/one.srt", "2024/tuesday/two_take.srt", "three.srt",
    ]  # fmt: skip
    ctm_lines = (tmp_path / "w" / "words.ctm").read_text().splitlines()
    assert len(ctm_lines) == sum(len(e["words"]) for e in transcripts.values())


def test_a_librispeech_split_holding_audio_it_cannot_read_is_refused(tmp_path) -> None:
    write_flac(tmp_path / "ls" / "1" / "2" / "1-2-0000.flac", 16_000, seed=1)
    (tmp_path / "ls" / "1" / "2" / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    sf.write(tmp_path / "ls" / "1" / "2" / "1-2-0001.wav", np.zeros(16_000), 16_000)
    message = fails("wav2vec2_preprocess.py", "--input", tmp_path / "ls", "--batch_size", 1, "--output",
                    tmp_path / "in", "--data_path", tmp_path / "data")  # fmt: skip
    assert "1-2-0001.wav" in message and "convert them to .flac" in message


def test_hidden_files_and_dirs_of_a_folder_are_left_out(tmp_path, traced_path) -> None:
    for relative in ("a.wav", ".git/objects/b.wav", "._a.wav", "sub/.hidden.wav", "c.aiff"):
        (tmp_path / "f" / relative).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "f" / relative, 0.1 * np.ones(16_000), 16_000)
    report = run_all(tmp_path / "w", tmp_path / "f", traced_path)
    assert [u["utt_id"] for u in report["utterances"]] == ["a", "c"]


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_resample_and_downmix_match_the_same_audio_converted_with_sox(tmp_path, tiny_model_dir) -> None:
    rng = np.random.default_rng(3)
    t = np.arange(88_200) / 44_100
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.02 * rng.standard_normal(t.size)
    raw = tmp_path / "raw"
    raw.mkdir()
    sf.write(raw / "clip.wav", np.stack([left, right], axis=1), 44_100, subtype="FLOAT")
    refused = fails("wav2vec2_preprocess.py", "--input", raw, "--batch_size", 1, "--output", tmp_path / "x",
                    "--data_path", tmp_path / "xd")  # fmt: skip
    assert "Pass --resample" in refused
    by_hand = tmp_path / "sox"
    by_hand.mkdir()
    subprocess.run(["sox", str(raw / "clip.wav"), "-e", "floating-point", "-b", "32", str(by_hand / "clip.wav"),
                    "remix", "1,2", "vol", "0.5", "rate", "-v", "16000"], check=True)  # fmt: skip
    rows = {}
    for name, source, flags in (("ours", raw, ("--resample", "--downmix")), ("sox", by_hand, ())):
        run_main("wav2vec2_preprocess.py", "--input", source, "--batch_size", 1, "--output", tmp_path / f"{name}_in",
                 "--data_path", tmp_path / f"{name}_data", "--pytorch_model_dir", tiny_model_dir, *flags)  # fmt: skip
        rows[name] = np.fromfile(tmp_path / f"{name}_in" / "batch_0.bin", dtype="<f4")
    assert np.count_nonzero(rows["ours"]) == np.count_nonzero(rows["sox"]) == 32_000  # 2 s at 16 kHz, then padding
    assert np.abs(rows["ours"] - rows["sox"]).max() < 0.02  # normalised units: the two resamplers agree


def test_subrip_and_ctm_by_hand() -> None:
    words = [Word("HELLO", 0.02, 0.3), Word("WORLD", 0.36, 0.7), Word("A" * 40, 61.0, 62.5)]
    assert srt(words) == (
        "1\n00:00:00,020 --> 00:00:00,700\nHELLO WORLD\n\n"
        f"2\n00:01:01,000 --> 00:01:02,500\n{'A' * 40}\n\n"
    )
    from wav2vec2_pipeline.outputs import Transcript

    assert ctm([Transcript("u1", "a.flac", "HELLO WORLD", words[:2])]) == (
        "u1 1 0.020 0.280 HELLO\nu1 1 0.360 0.340 WORLD\n"
    )


def test_the_english_normaliser_is_recorded_and_applied_to_both_sides(tmp_path, traced_path, dataset) -> None:
    work = tmp_path / "w"
    run_all(work, dataset[0], traced_path)
    run_main("wav2vec2_postprocess.py", "--input", work / "out", "--batch_size", 2, "--data_path", work / "data",
             "--normalizer", "english", "--report", work / "english.json")  # fmt: skip
    report = json.loads((work / "english.json").read_text())
    assert report["summary"]["normalizer"] == "english"
    from wav2vec2_pipeline.scoring import text_normalizer

    assert text_normalizer("english")("IT'S TWENTY FIVE") == "it is 25"


def test_case_of_the_references_does_not_count_as_errors(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 50_000})
    reports = {}
    for case in ("upper", "lower"):
        trans = ls / "1" / "2" / "1-2.trans.txt"
        text = trans.read_text()
        trans.write_text(text.lower() if case == "lower" else text.upper())
        run_main("wav2vec2_preprocess.py", "--input", ls, "--batch_size", 2, "--output", tmp_path / case / "in",
                 "--data_path", tmp_path / case / "data")  # fmt: skip
        run_main("compile.py", "--batch_size", 2, "--input_path", tmp_path / case / "in", "--output_path",
                 tmp_path / case / "out", "--torchscript_path", traced_path, *FAST)  # fmt: skip
        run_main("wav2vec2_postprocess.py", "--input", tmp_path / case / "out", "--batch_size", 2, "--data_path",
                 tmp_path / case / "data")  # fmt: skip
        reports[case] = json.loads((tmp_path / case / "data" / "report_bs2.json").read_text())
    assert reports["lower"]["summary"]["wer"] == reports["upper"]["summary"]["wer"]
    assert reports["lower"]["summary"]["normalizer"] == "upper"
    assert reports["lower"]["utterances"][0]["reference"].islower()  # the report keeps what the file says


def test_zero_length_and_too_short_audio_is_transcribed_as_empty_and_reported(tmp_path, traced_path) -> None:
    ls = tmp_path / "ls"
    write_librispeech_tree(ls, {"1-2-0000": 30_000, "1-2-0001": 300, "1-2-0002": 1})
    write_empty_streamed_flac(ls / "1" / "2" / "1-2-0002.flac")  # as sox writes an empty recording
    result = run_main("wav2vec2_preprocess.py", "--input", ls, "--batch_size", 2, "--output", tmp_path / "in",
                      "--data_path", tmp_path / "data")  # fmt: skip
    assert "empty 2 utterances too short for one frame (400 samples)" in result.stdout
    run_main("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path", tmp_path / "out",
             "--torchscript_path", traced_path, *FAST)  # fmt: skip
    printed = run_main("wav2vec2_postprocess.py", "--input", tmp_path / "out", "--batch_size", 2, "--data_path",
                       tmp_path / "data").stdout  # fmt: skip
    assert "empty 2" in printed
    report = json.loads((tmp_path / "data" / "report_bs2.json").read_text())
    empty = [u for u in report["utterances"] if u["outcome"] == "empty"]
    assert [u["hypothesis"] for u in empty] == ["", ""] and {u["status"] for u in empty} == {"scored"}
    assert all(u["word_errors"]["deletions"] == len(u["reference"].split()) for u in empty)


@pytest.mark.skipif(not (TRAINED_MODEL.is_dir() and ESPEAK_LONG.is_dir()), reason="../shared model or data absent")
def test_word_times_of_chunked_long_utterances_match_the_whole_utterance(tmp_path) -> None:
    """On the trained model: 15-25 s espeak utterances, chunked into 100000-sample windows and stitched, against
    the same utterances run whole (one 400000-sample bucket): words in order, inside the utterance, and where
    both runs decode the same word sequence around it, the same times within one frame (20 ms)."""
    source = tmp_path / "long"
    shutil.copytree(ESPEAK_LONG, source / "8003")
    for f in sorted((source / "8003").rglob("*.flac"))[4:]:  # four utterances keep the test short
        f.unlink()
    trans = next((source / "8003").rglob("*.trans.txt"))
    kept = {f.name.removesuffix(".flac") for f in (source / "8003").rglob("*.flac")}
    trans.write_text("".join(line + "\n" for line in trans.read_text().splitlines() if line.split()[0] in kept))
    traced = tmp_path / "traced.pth"
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", TRAINED_MODEL, "--output", traced)
    chunked = run_all(tmp_path / "chunk", source, traced, "--max_samples", 100_000, batch_size=1)
    whole = run_all(tmp_path / "whole", source, traced, "--layout", "bucket", "--bucket_samples", "400000",
                    batch_size=1)
    compared = 0
    for utt_id, entry in transcripts_of(tmp_path / "chunk", 1).items():
        seconds = next(u["seconds"] for u in chunked["utterances"] if u["utt_id"] == utt_id)
        starts = [w["start"] for w in entry["words"]]
        assert starts == sorted(starts) and all(0 <= w["start"] < w["end"] <= seconds + 0.02 for w in entry["words"])
        other = transcripts_of(tmp_path / "whole", 1)[utt_id]["words"]
        for i, word in enumerate(entry["words"]):
            for j, candidate in enumerate(other):
                same_context = [w["word"] for w in entry["words"][max(i - 1, 0) : i + 2]] == [
                    w["word"] for w in other[max(j - 1, 0) : j + 2]
                ]
                if same_context and abs(candidate["start"] - word["start"]) < 1.0:
                    assert abs(candidate["start"] - word["start"]) <= 0.02 + 1e-9
                    assert abs(candidate["end"] - word["end"]) <= 0.02 + 1e-9
                    compared += 1
    assert compared >= 10  # enough words agree between the two runs to say something
    assert whole["summary"]["utterances_scored"] == chunked["summary"]["utterances_scored"] == 4


@pytest.mark.skipif(not ESPEAK_LONG.is_dir(), reason="../shared has no trained model and long test speech")
def test_a_recording_of_several_minutes_in_a_folder_is_one_transcript_in_bins_of_bounded_size(tmp_path) -> None:
    """The default layout: a 6.7-minute recording (the twenty 15-25 s espeak utterances end to end, on the trained
    model) is chunked into 35 s windows with context on both sides and stitched into one transcript, its words in
    order and inside the recording; no bin holds more than --bin_samples, so memory does not grow with the
    recording."""
    clips = sorted(ESPEAK_LONG.rglob("*.flac"))
    audio = np.concatenate([sf.read(clip, dtype="float32")[0] for clip in clips])
    (tmp_path / "talks").mkdir()
    sf.write(tmp_path / "talks" / "talk.flac", audio, 16_000, subtype="PCM_16")
    traced = tmp_path / "traced.pth"
    run_main("wav2vec2_pth2ts.py", "--pytorch_model_dir", TRAINED_MODEL, "--output", traced)
    budget = 2 * 560_000
    report = run_all(tmp_path / "w", tmp_path / "talks", traced, "--bin_samples", budget, batch_size=8)
    (entry,) = report["utterances"]
    assert entry["long_audio"] == "chunked" and entry["seconds_lost"] == 0
    seconds = len(audio) / 16_000
    windows = -(-(len(audio) - 560_000) // ((1749 - 2 * (1749 // 6)) * 320)) + 1
    bins = sorted((tmp_path / "w" / "in").glob("batch_*.bin"))
    assert len(bins) == -(-windows // 2) and all(b.stat().st_size <= budget * 4 for b in bins)
    (transcript,) = transcripts_of(tmp_path / "w", 8).values()
    words = transcript["words"]
    starts = [w["start"] for w in words]
    assert len(words) > 400 and starts == sorted(starts)  # the twenty clips hold 1000 words or so
    assert all(0 <= w["start"] < w["end"] <= seconds + 0.02 for w in words)
    assert words[-1]["end"] > seconds - 30  # the last window's words are there
