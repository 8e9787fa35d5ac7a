import pytest

from wav2vec2_pipeline.scoring import ErrorCounts, char_errors, corpus_cer, corpus_wer, word_errors


def test_word_errors_counted_by_hand() -> None:
    # HELLO->HULLO substitution, WORLD deleted, AGAIN inserted
    counts = word_errors("HELLO BIG WORLD", "HULLO BIG AGAIN")
    assert counts == ErrorCounts(substitutions=2, deletions=0, insertions=0, reference_length=3)
    assert word_errors("A B C D", "A C D E") == ErrorCounts(0, 1, 1, 4)
    assert word_errors("A B", "") == ErrorCounts(0, 2, 0, 2)


def test_char_errors_count_spaces() -> None:
    # "AB CD" (5 chars) -> "ABCD": one deleted space
    assert char_errors("AB CD", "ABCD") == ErrorCounts(0, 1, 0, 5)
    assert char_errors("CAT", "CUT").errors == 1


def test_corpus_rates_sum_edits_over_utterances_not_mean_of_rates() -> None:
    references = ["A B C D", "E"]
    hypotheses = ["A B C D", "F"]
    # 1 edit over 5 words = 0.2; the mean of per-utterance rates would be 0.5
    assert corpus_wer(references, hypotheses) == pytest.approx(0.2)
    # characters: "A B C D" has 7, "E" has 1; one substitution
    assert corpus_cer(references, hypotheses) == pytest.approx(1 / 8)
