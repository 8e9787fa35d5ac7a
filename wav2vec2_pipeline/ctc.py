"""CTC paths to words: collapse repeats, drop blanks, `|` -> space, with the frames each word spans (for word
times); and the greedy decoder, whose path is the best token of each frame."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wav2vec2_pipeline.model import BLANK_TOKEN, WORD_DELIMITER


@dataclass(frozen=True)
class WordSpan:
    word: str
    start_frame: int
    """Its first non-blank frame."""
    end_frame: int
    """One past its last non-blank frame, as the HF tokenizer's word offsets count."""


def token_runs(token_ids: np.ndarray, blank_id: int) -> list[tuple[int, int, int]]:
    """(token, first frame, one past the last frame) of every run of one id that is not the blank; a blank
    between two equal ids keeps both (the LL in HELLO)."""
    if token_ids.size == 0:
        return []
    starts = np.flatnonzero(np.concatenate(([True], token_ids[1:] != token_ids[:-1])))
    ends = np.append(starts[1:], token_ids.size)
    return [(int(token_ids[a]), int(a), int(b)) for a, b in zip(starts, ends, strict=True) if token_ids[a] != blank_id]


def collapse(token_ids: np.ndarray, blank_id: int) -> list[int]:
    """Merge runs of one id, then drop blanks."""
    return [token for token, _, _ in token_runs(token_ids, blank_id)]


def _check(logits: np.ndarray, vocab: Sequence[str]) -> None:
    if logits.ndim != 2 or logits.shape[1] != len(vocab):
        raise ValueError(f"logits of shape {logits.shape} do not match a vocabulary of {len(vocab)} tokens")


def greedy_words(logits: np.ndarray, vocab: Sequence[str]) -> list[WordSpan]:
    """The words of one utterance's logits (frames x vocab size), each with the frames it spans; frame
    indices count from the utterance's start, so stitched chunk logits give utterance-wide times."""
    _check(logits, vocab)
    return path_words(logits.argmax(axis=1), vocab)


def path_words(path: np.ndarray, vocab: Sequence[str]) -> list[WordSpan]:
    """The words a CTC path (a token id per frame) spells, each with the frames it spans."""
    words: list[WordSpan] = []
    chars: list[str] = []
    start = end = 0
    for token, first, last in [*token_runs(path, vocab.index(BLANK_TOKEN)), (-1, 0, 0)]:
        if token == -1 or vocab[token] == WORD_DELIMITER:
            if chars:
                words.append(WordSpan("".join(chars), start, end))
            chars = []
            continue
        if not chars:
            start = first
        chars.append(vocab[token])
        end = last
    return words


@dataclass(frozen=True)
class GreedyDecoder:
    """The best token per frame: as the HF tokenizer's `batch_decode` of the argmax. It takes no options and
    is cheap enough to run in the reading process."""

    vocab: Sequence[str]
    options: object = None
    parallel = False

    def __call__(self, logits: np.ndarray) -> list[WordSpan]:
        return greedy_words(logits, self.vocab)


def greedy_decode(logits: np.ndarray, vocab: Sequence[str]) -> str:
    """Text of one utterance's logits, shape (frames, vocab size): words joined by single spaces."""
    return " ".join(span.word for span in greedy_words(logits, vocab))
