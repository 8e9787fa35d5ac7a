"""Word and character error rates with jiwer, per utterance and over the corpus."""

from collections.abc import Callable
from dataclasses import dataclass

import jiwer

from wav2vec2_pipeline.errors import PipelineError


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int
    deletions: int
    insertions: int
    reference_length: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def _counts(output: jiwer.WordOutput | jiwer.CharacterOutput) -> ErrorCounts:
    return ErrorCounts(
        substitutions=output.substitutions,
        deletions=output.deletions,
        insertions=output.insertions,
        reference_length=output.hits + output.substitutions + output.deletions,
    )


def word_errors(reference: str, hypothesis: str) -> ErrorCounts:
    return _counts(jiwer.process_words(reference, hypothesis))


def char_errors(reference: str, hypothesis: str) -> ErrorCounts:
    """Character edits, spaces included, as jiwer.cer counts them."""
    return _counts(jiwer.process_characters(reference, hypothesis))


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Word edits summed over utterances / reference words summed (not a mean of per-utterance WERs)."""
    return float(jiwer.wer(references, hypotheses))


def corpus_cer(references: list[str], hypotheses: list[str]) -> float:
    """Character edits summed over utterances / reference characters summed, spaces included."""
    return float(jiwer.cer(references, hypotheses))


UPPER, ENGLISH, NONE = "upper", "english", "none"
NORMALIZERS = (UPPER, ENGLISH, NONE)
"""Applied to reference and hypothesis alike before scoring: `upper` folds case and whitespace (right for
LibriSpeech, whose references are upper case); `english` is Whisper's English text normaliser as shipped with
transformers (the Open ASR Leaderboard's convention: numbers, contractions, fillers, punctuation), without the
British-to-American spelling map, which transformers does not ship; `none` scores the texts as they are."""


def text_normalizer(name: str) -> Callable[[str], str]:
    if name == UPPER:
        return lambda text: " ".join(text.upper().split())
    if name == ENGLISH:
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

        return EnglishTextNormalizer({})
    if name == NONE:
        return lambda text: text
    raise PipelineError(f"--normalizer {name!r}: choose one of {', '.join(NORMALIZERS)}")
