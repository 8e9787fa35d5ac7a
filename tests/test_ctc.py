import numpy as np
import pytest
from transformers import Wav2Vec2CTCTokenizer

from wav2vec2_pipeline.ctc import collapse, greedy_decode, greedy_words
from wav2vec2_pipeline.model import BASE_960H_VOCAB

BLANK = "<pad>"


def one_hot_logits(frames: list[str]) -> np.ndarray:
    """Logits whose argmax spells `frames` (one token per frame), with noise below the winner."""
    rng = np.random.default_rng(0)
    logits = rng.uniform(-1.0, 0.0, size=(len(frames), len(BASE_960H_VOCAB))).astype(np.float32)
    for frame, token in enumerate(frames):
        logits[frame, BASE_960H_VOCAB.index(token)] = 5.0
    return logits


def test_collapse_merges_runs_and_drops_blanks_but_keeps_letters_split_by_a_blank() -> None:
    assert collapse(np.array([0, 7, 7, 0, 7, 9, 9, 0, 0]), blank_id=0) == [7, 7, 9]
    assert collapse(np.array([], dtype=np.int64), blank_id=0) == []
    assert collapse(np.array([0, 0]), blank_id=0) == []


def test_greedy_decode_spells_a_sentence_with_repeats_blanks_and_word_breaks() -> None:
    frames = [BLANK, "H", "H", "E", BLANK, "L", "L", BLANK, "L", "O", "O", "|", "|", BLANK,
              "W", "O", BLANK, "R", "R", "L", "D", "|", BLANK, "I", "T", "'", "S", BLANK]  # fmt: skip
    assert greedy_decode(one_hot_logits(frames), BASE_960H_VOCAB) == "HELLO WORLD IT'S"


def test_word_breaks_at_the_ends_and_doubled_give_single_inner_spaces() -> None:
    frames = ["|", "A", "|", BLANK, "|", "B", "|", "|"]
    assert greedy_decode(one_hot_logits(frames), BASE_960H_VOCAB) == "A B"


def test_all_blank_decodes_to_empty_text() -> None:
    assert greedy_decode(one_hot_logits([BLANK] * 5), BASE_960H_VOCAB) == ""


@pytest.fixture
def tokenizer(tmp_path) -> Wav2Vec2CTCTokenizer:
    vocab_file = tmp_path / "vocab.json"
    vocab_file.write_text("{" + ", ".join(f'"{t}": {i}' for i, t in enumerate(BASE_960H_VOCAB)) + "}")
    return Wav2Vec2CTCTokenizer(str(vocab_file))


def test_agrees_with_the_hf_tokenizer_on_random_logits(tokenizer) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        logits = rng.standard_normal((50, len(BASE_960H_VOCAB)))
        logits[:, 0] += 1.0  # blank-heavy, as real CTC output is
        expected = " ".join(tokenizer.decode(logits.argmax(1)).split())
        assert greedy_decode(logits, BASE_960H_VOCAB) == expected


def test_word_frames_agree_with_the_hf_tokenizers_word_offsets(tokenizer) -> None:
    rng = np.random.default_rng(2)
    for _ in range(20):
        logits = rng.standard_normal((80, len(BASE_960H_VOCAB)))
        logits[:, 0] += 1.5
        logits[:, 4] += 0.8  # word breaks often enough for several words
        expected = tokenizer.decode(logits.argmax(1), output_word_offsets=True).word_offsets
        spans = greedy_words(logits, BASE_960H_VOCAB)
        assert [(s.word, s.start_frame, s.end_frame) for s in spans] == [
            (w["word"], int(w["start_offset"]), int(w["end_offset"])) for w in expected
        ]


def test_word_frames_by_hand() -> None:
    frames = [BLANK, "H", "I", BLANK, "|", "|", BLANK, BLANK, "Y", "O", "U", "U", BLANK]
    spans = greedy_words(one_hot_logits(frames), BASE_960H_VOCAB)
    assert [(s.word, s.start_frame, s.end_frame) for s in spans] == [("HI", 1, 3), ("YOU", 8, 12)]


def test_rejects_logits_of_another_vocabulary_size() -> None:
    with pytest.raises(ValueError, match="vocabulary of 32 tokens"):
        greedy_decode(np.zeros((4, 31)), BASE_960H_VOCAB)
