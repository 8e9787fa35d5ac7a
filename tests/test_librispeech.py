import pytest

from tests.conftest import write_librispeech_tree
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.librispeech import find_utterances, parse_transcripts


def test_finds_every_utterance_sorted_with_its_transcript(tmp_path) -> None:
    written = write_librispeech_tree(tmp_path, {"20-5-0001": 800, "1-2-0000": 900, "1-2-0001": 700})
    found = find_utterances(tmp_path)
    assert [u.utt_id for u in found] == ["1-2-0000", "1-2-0001", "20-5-0001"]
    assert {u.utt_id: u.transcript for u in found} == {u.utt_id: u.transcript for u in written}
    assert found[0].audio_path == tmp_path / "1" / "2" / "1-2-0000.flac"


def test_audio_without_a_transcript_line_is_named(tmp_path) -> None:
    write_librispeech_tree(tmp_path, {"1-2-0000": 800, "1-2-0001": 800})
    trans = tmp_path / "1" / "2" / "1-2.trans.txt"
    trans.write_text(trans.read_text().splitlines()[0] + "\n")
    with pytest.raises(PipelineError, match=r"no transcript line, e\.g\. .*1-2-0001\.flac"):
        find_utterances(tmp_path)


def test_a_transcript_line_without_audio_is_named(tmp_path) -> None:
    write_librispeech_tree(tmp_path, {"1-2-0000": 800})
    (tmp_path / "1" / "2" / "1-2.trans.txt").write_text("1-2-0000 HI\n1-2-0009 GONE\n")
    with pytest.raises(PipelineError, match=r"1-2-0009 in .*1-2\.trans\.txt"):
        find_utterances(tmp_path)


def test_empty_or_missing_dir(tmp_path) -> None:
    with pytest.raises(PipelineError, match=r"no \.flac files"):
        find_utterances(tmp_path)
    with pytest.raises(PipelineError, match="does not exist"):
        find_utterances(tmp_path / "nope")


def test_malformed_and_duplicate_lines(tmp_path) -> None:
    (tmp_path / "a.trans.txt").write_text("1-2-0000\n")
    with pytest.raises(PipelineError, match=r"a.trans.txt:1"):
        parse_transcripts(tmp_path / "a.trans.txt")
    (tmp_path / "b.trans.txt").write_text("1-2-0000 A\n1-2-0000 B\n")
    with pytest.raises(PipelineError, match="listed twice"):
        parse_transcripts(tmp_path / "b.trans.txt")
