"""Inputs as real trees and tools make them: linked directories, editors' encodings, headers that lie."""

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import write_empty_streamed_flac, write_flac, write_librispeech_tree
from wav2vec2_pipeline.audio import audio_num_samples, read_audio
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.librispeech import find_utterances, parse_transcripts

# --- dataset trees built with links ---


def test_linked_speaker_and_chapter_dirs_are_walked(tmp_path) -> None:
    store, root = tmp_path / "store", tmp_path / "root"
    write_librispeech_tree(store, {"1-2-0000": 800, "1-2-0001": 900, "3-4-0000": 700})
    write_librispeech_tree(root, {"5-6-0000": 600})
    (root / "1").symlink_to(store / "1", target_is_directory=True)  # a whole speaker, linked
    (root / "5" / "7").symlink_to(store / "3" / "4", target_is_directory=True)  # a chapter, linked deeper
    found = find_utterances(root)
    assert [u.utt_id for u in found] == ["1-2-0000", "1-2-0001", "3-4-0000", "5-6-0000"]
    assert found[0].audio_path == root / "1" / "2" / "1-2-0000.flac"
    assert found[2].audio_path == root / "5" / "7" / "3-4-0000.flac"


def test_a_link_to_an_ancestor_does_not_loop_and_a_dir_reached_twice_counts_once(tmp_path) -> None:
    store, root = tmp_path / "store", tmp_path / "root"
    write_librispeech_tree(store, {"1-2-0000": 800, "1-2-0001": 900})
    root.mkdir()
    (root / "a").symlink_to(store, target_is_directory=True)
    (root / "b").symlink_to(store / "1", target_is_directory=True)  # the same speaker again
    (store / "1" / "2" / "up").symlink_to(store, target_is_directory=True)  # a cycle
    (root / "self").symlink_to(root, target_is_directory=True)  # another cycle, at the top
    found = find_utterances(root)
    assert [u.utt_id for u in found] == ["1-2-0000", "1-2-0001"]
    assert found[0].audio_path == root / "a" / "1" / "2" / "1-2-0000.flac"  # sorted walk: `a` before `b`


def test_the_same_audio_through_two_file_links_counts_once(tmp_path) -> None:
    store, root = tmp_path / "store", tmp_path / "root"
    write_librispeech_tree(store, {"1-2-0000": 800})
    (root / "1" / "2").mkdir(parents=True)
    (root / "x").symlink_to(store / "1" / "2", target_is_directory=True)
    for name in ("1-2-0000.flac", "1-2.trans.txt"):  # linked files, relative links as `ln -s` makes them
        (root / "1" / "2" / name).symlink_to(Path("..", "..", "..", "store", "1", "2", name))
    found = find_utterances(root)
    assert [(u.utt_id, u.audio_path) for u in found] == [("1-2-0000", root / "1" / "2" / "1-2-0000.flac")]
    assert read_audio(found[0].audio_path).shape == (800,)


def test_two_different_files_with_one_utterance_id_are_both_named(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "root", {"1-2-0000": 800})
    write_flac(tmp_path / "root" / "backup" / "1-2-0000.flac", 900, seed=5)
    with pytest.raises(PipelineError, match="1-2-0000 has two different audio files") as error:
        find_utterances(tmp_path / "root")
    assert str(tmp_path / "root" / "1" / "2" / "1-2-0000.flac") in str(error.value)
    assert str(tmp_path / "root" / "backup" / "1-2-0000.flac") in str(error.value)


def test_two_different_files_with_one_id_through_a_linked_dir(tmp_path) -> None:
    write_librispeech_tree(tmp_path / "root", {"1-2-0000": 800})
    write_librispeech_tree(tmp_path / "other", {"1-2-0000": 900})
    (tmp_path / "root" / "more").symlink_to(tmp_path / "other", target_is_directory=True)
    with pytest.raises(PipelineError, match=r"two different audio files.*more/1/2/1-2-0000\.flac"):
        find_utterances(tmp_path / "root")


def test_one_utterance_in_two_transcript_files_names_both_lines(tmp_path) -> None:
    write_librispeech_tree(tmp_path, {"1-2-0000": 800, "1-2-0001": 800})
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "1-2.trans.txt").write_text("1-2-0009 X\n1-2-0001 A DIFFERENT TEXT\n")
    with pytest.raises(PipelineError, match=r"1-2\.trans\.txt:\d: utterance 1-2-0001 is also listed at .*:\d") as error:
        find_utterances(tmp_path)
    assert str(tmp_path / "old" / "1-2.trans.txt") in str(error.value)


@pytest.mark.parametrize("name", ["1-2-0001.flac", "1-2.trans.txt"])
def test_a_dangling_link_is_named(tmp_path, name) -> None:
    write_librispeech_tree(tmp_path, {"1-2-0000": 800, "1-2-0001": 800})
    link = tmp_path / "1" / "2" / name
    link.unlink()
    link.symlink_to(tmp_path / "gone" / name)
    with pytest.raises(PipelineError, match=rf"{link} is a broken link \(to .*gone"):
        find_utterances(tmp_path)


def test_a_linked_input_root_and_an_unrelated_dangling_link(tmp_path) -> None:
    written = write_librispeech_tree(tmp_path / "real", {"1-2-0000": 800})
    (tmp_path / "real" / "1" / "notes").symlink_to(tmp_path / "nowhere")  # not audio or text: ignored
    (tmp_path / "split").symlink_to(tmp_path / "real", target_is_directory=True)
    found = find_utterances(tmp_path / "split")
    assert [(u.utt_id, u.transcript) for u in found] == [(written[0].utt_id, written[0].transcript)]


# --- transcript files as editors save them ---

LINES = {"1-2-0000": "HELLO WORLD", "1-2-0001": "IT'S A QUIZ", "1-2-0002": "NAÏVE CAFÉ"}


@pytest.mark.parametrize(
    ("encoding", "mark"),
    [("utf-8", b"\xef\xbb\xbf"), ("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-32-le", None)],
)
@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_byte_order_marks_and_line_ends(tmp_path, encoding, mark, line_end) -> None:
    text = line_end.join(f"{utt_id} {words}" for utt_id, words in LINES.items()) + line_end
    data = (mark if mark is not None else "\ufeff".encode(encoding)) + text.encode(encoding)
    (tmp_path / "a.trans.txt").write_bytes(data)
    assert parse_transcripts(tmp_path / "a.trans.txt") == LINES


def test_tabs_runs_of_spaces_non_breaking_spaces_trailing_space_and_blank_lines(tmp_path) -> None:
    text = (
        "\n   \n1-2-0000\tHELLO  WORLD \t\r\n"
        "1-2-0001    IT'S\u00a0A QUIZ   \n\n"
        "1-2-0002\u00a0NAÏVE\u202fCAFÉ\u00a0\n\t\n"
    )
    (tmp_path / "a.trans.txt").write_bytes(text.encode())
    assert parse_transcripts(tmp_path / "a.trans.txt") == LINES


def test_a_byte_order_mark_left_mid_file_by_concatenation(tmp_path) -> None:
    first, second = b"\xef\xbb\xbf1-2-0000 HELLO WORLD\n", b"\xef\xbb\xbf1-2-0001 IT'S A QUIZ\n"
    (tmp_path / "a.trans.txt").write_bytes(first + second)
    assert parse_transcripts(tmp_path / "a.trans.txt") == {"1-2-0000": "HELLO WORLD", "1-2-0001": "IT'S A QUIZ"}


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_a_file_that_is_not_utf8_names_the_line_and_byte(tmp_path, encoding) -> None:
    text = "1-2-0000 HELLO\r\n1-2-0001 WORLD\r1-2-0002 CAFÉ\n"
    (tmp_path / "a.trans.txt").write_bytes(text.encode(encoding))
    with pytest.raises(PipelineError, match=r"a\.trans\.txt:3: byte 0xc9 is not UTF-8 .*save it as UTF-8"):
        parse_transcripts(tmp_path / "a.trans.txt")


def test_utf16_without_a_byte_order_mark_is_named(tmp_path) -> None:
    (tmp_path / "a.trans.txt").write_bytes("1-2-0000 HELLO\n".encode("utf-16-le"))
    with pytest.raises(PipelineError, match=r"a\.trans\.txt:1: NUL .*UTF-16 without a byte-order mark"):
        parse_transcripts(tmp_path / "a.trans.txt")


def test_a_broken_utf16_file_names_the_line(tmp_path) -> None:
    data = b"\xff\xfe" + "1-2-0000 HELLO\n1-2-0001 WORLD\n".encode("utf-16-le") + b"\x00"  # an odd byte at the end
    (tmp_path / "a.trans.txt").write_bytes(data)
    with pytest.raises(PipelineError, match=r"a\.trans\.txt:3: bytes 00 are not UTF-16-LE.*save it as UTF-8"):
        parse_transcripts(tmp_path / "a.trans.txt")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("1-2-0000 HI\r\n1-2-0001\t \r\n", ":2: expected '<utt_id> <TRANSCRIPT>'"),
        ("1-2-0000 HI\r1-2-0001\u00a0\r", ":2: expected '<utt_id> <TRANSCRIPT>'"),
        ("\r\n1-2-0000 HI\r\n\r\n1-2-0000\tHI AGAIN\r\n", ":4: utterance 1-2-0000 is listed twice .first on line 2"),
    ],
)
def test_bad_lines_name_the_file_and_line_with_windows_line_ends(tmp_path, text, where) -> None:
    (tmp_path / "a.trans.txt").write_bytes(("\ufeff" + text).encode("utf-16"))
    with pytest.raises(PipelineError, match=rf"a\.trans\.txt{where}"):
        parse_transcripts(tmp_path / "a.trans.txt")


def test_a_tree_with_utf16_and_cp1252_transcripts(tmp_path) -> None:
    write_librispeech_tree(tmp_path, {"1-2-0000": 800, "3-4-0000": 800})
    (tmp_path / "1" / "2" / "1-2.trans.txt").write_bytes("\ufeff1-2-0000\tCAFÉ\r\n".encode("utf-16"))
    (tmp_path / "3" / "4" / "3-4.trans.txt").write_bytes("3-4-0000 CAFÉ\r\n".encode("cp1252"))
    with pytest.raises(PipelineError, match=r"3-4\.trans\.txt:1: byte 0xc9 is not UTF-8"):
        find_utterances(tmp_path)
    (tmp_path / "3" / "4" / "3-4.trans.txt").write_bytes("\ufeff3-4-0000  CAFÉ \n".encode())
    assert [(u.utt_id, u.transcript) for u in find_utterances(tmp_path)] == [("1-2-0000", "CAFÉ"), ("3-4-0000", "CAFÉ")]


# --- audio whose header lies about its length ---


def set_total_samples(path: Path, total: int) -> None:
    """Rewrite the 36-bit total-samples field of a FLAC's STREAMINFO, as a buggy or streaming writer leaves it."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0
    (word,) = struct.unpack(">Q", data[18:26])
    data[18:26] = struct.pack(">Q", (word & ~(2**36 - 1)) | total)
    path.write_bytes(bytes(data))


def test_an_empty_flac_of_unknown_length_is_zero_samples(tmp_path) -> None:
    write_empty_streamed_flac(tmp_path / "empty.flac")
    assert sf.info(str(tmp_path / "empty.flac")).frames == 2**63 - 1  # what libsndfile makes of it
    assert audio_num_samples(tmp_path / "empty.flac") == 0
    audio = read_audio(tmp_path / "empty.flac")
    assert audio.shape == (0,) and audio.dtype == np.float32
    assert read_audio(tmp_path / "empty.flac", expected_samples=0).shape == (0,)
    with pytest.raises(PipelineError, match=r"empty\.flac decodes to 0 samples, but 10 were expected"):
        read_audio(tmp_path / "empty.flac", expected_samples=10)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
def test_an_empty_flac_written_by_sox(tmp_path) -> None:
    path = tmp_path / "sox.flac"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", "0"], check=True)
    assert audio_num_samples(path) == 0
    assert read_audio(path).shape == (0,)


@pytest.mark.parametrize("header_total", [0, 2**35, 2**36 - 1])
def test_an_unknown_or_impossible_header_count_is_counted_by_decoding(tmp_path, header_total) -> None:
    write_flac(tmp_path / "a.flac", 50_000, seed=1)
    reference, _ = sf.read(str(tmp_path / "a.flac"), dtype="float32")
    set_total_samples(tmp_path / "a.flac", header_total)
    assert audio_num_samples(tmp_path / "a.flac") == 50_000
    np.testing.assert_array_equal(read_audio(tmp_path / "a.flac"), reference)
    np.testing.assert_array_equal(read_audio(tmp_path / "a.flac", expected_samples=50_000), reference)


@pytest.mark.parametrize("header_total", [30_000, 49_999, 50_001, 70_000])
def test_a_header_that_claims_more_or_fewer_samples_than_decode_is_named(tmp_path, header_total) -> None:
    write_flac(tmp_path / "a.flac", 50_000, seed=1)
    set_total_samples(tmp_path / "a.flac", header_total)
    planned = audio_num_samples(tmp_path / "a.flac")  # plausible, so trusted without a decode
    assert planned == header_total
    decoded = "more than" if header_total < 50_000 else "50000"
    for kwargs in ({}, {"expected_samples": planned}):
        with pytest.raises(PipelineError, match=rf"a\.flac decodes to {decoded} .*were expected"):
            read_audio(tmp_path / "a.flac", **kwargs)


def test_read_audio_checks_the_count_the_run_was_planned_with(tmp_path) -> None:
    write_flac(tmp_path / "a.flac", 1234, seed=0)
    assert read_audio(tmp_path / "a.flac", expected_samples=1234).shape == (1234,)
    for wrong, decoded in ((1000, "more than 1000"), (2000, "1234")):
        with pytest.raises(PipelineError, match=rf"a\.flac decodes to {decoded} samples, but {wrong} were expected"):
            read_audio(tmp_path / "a.flac", expected_samples=wrong)


def test_a_corrupt_file_of_unknown_length_is_named(tmp_path) -> None:
    write_flac(tmp_path / "a.flac", 50_000, seed=1)
    data = bytearray((tmp_path / "a.flac").read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)  # frames zeroed from the middle on
    (tmp_path / "a.flac").write_bytes(bytes(data))
    set_total_samples(tmp_path / "a.flac", 0)
    with pytest.raises(PipelineError, match=r"cannot decode .*a\.flac"):
        audio_num_samples(tmp_path / "a.flac")
    with pytest.raises(PipelineError, match=r"cannot decode .*a\.flac"):
        read_audio(tmp_path / "a.flac")


def test_a_dangling_audio_link_is_named_on_read(tmp_path) -> None:
    (tmp_path / "a.flac").symlink_to(tmp_path / "gone.flac")
    with pytest.raises(PipelineError, match=r"cannot read .*a\.flac"):
        read_audio(tmp_path / "a.flac")
