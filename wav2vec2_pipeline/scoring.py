"""Word and character error rates with jiwer, per utterance and over the corpus."""

from dataclasses import asdict, dataclass

import jiwer


@dataclass(frozen=True)
class ErrorCounts:
    substitutions: int
    deletions: int
    insertions: int
    reference_length: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def as_dict(self) -> dict[str, int]:
        return asdict(self) | {"errors": self.errors}


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
