"""How logits become words: the decoder picked by name (registry.DECODERS) with its options, checked once
before any work, and run over the utterances, in parallel processes where the decoder is costly."""

import math
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Protocol

import numpy as np

from wav2vec2_pipeline.ctc import WordSpan
from wav2vec2_pipeline.device import MAX_THREADS
from wav2vec2_pipeline.errors import require
from wav2vec2_pipeline.options import group, option
from wav2vec2_pipeline.registry import DECODERS

MAX_BEAM = 10_000
"""Hypotheses or tokens per frame beyond this are a typo: the search's time and memory grow with them."""
UTTERANCES_PER_TASK = 8
"""Utterances a worker process decodes per task: enough that the logits' transfer is a small part of it."""


@dataclass(frozen=True, kw_only=True)
class BeamOptions:
    """CTC beam search with a word n-gram LM (flashlight-text, KenLM inside); defaults tuned on the trained
    model's held-out set with an LM of LibriSpeech dev-clean text (docs/decoding.md)."""

    lm: Path | None = option(None, "beam: a word n-gram LM, ARPA or KenLM binary (none: the search alone)", type=Path)
    lexicon: Path | None = option(None, "beam: the words the search may spell, one per line (`WORD W O R D |`); "
                                        "default: the ARPA LM's words", type=Path)
    lexicon_free: bool = option(False, "beam: spell freely, letter by letter, with no lexicon (an --lm must then "
                                       "be over the model's tokens)")
    beam_size: int = option(50, "beam: hypotheses kept per frame")
    beam_size_token: int | None = option(16, "beam: tokens tried per frame, the likeliest (at most the "
                                             "vocabulary's)", type=int)
    beam_threshold: float = option(25.0, "beam: drop hypotheses this far (log) below the best")
    lm_weight: float = option(1.5, "beam: the LM's weight against the model's")
    word_score: float = option(-1.0, "beam: a bonus (or, negative, a cost) for each word")
    decode_workers: int | None = option(None, "beam: processes decoding in parallel (default: one per core)",
                                        type=int)  # fmt: skip

    def __post_init__(self) -> None:
        require((
            (1 <= self.beam_size <= MAX_BEAM, f"--beam_size must be between 1 and {MAX_BEAM}, got {self.beam_size}"),
            (self.beam_size_token is None or 1 <= self.beam_size_token <= MAX_BEAM,
             f"--beam_size_token must be between 1 and {MAX_BEAM}, got {self.beam_size_token}"),
            (math.isfinite(self.beam_threshold) and self.beam_threshold > 0,
             f"--beam_threshold must be a positive number, got {self.beam_threshold}"),
            (math.isfinite(self.lm_weight), f"--lm_weight must be a number, got {self.lm_weight}"),
            (math.isfinite(self.word_score), f"--word_score must be a number, got {self.word_score}"),
            (self.decode_workers is None or 1 <= self.decode_workers <= MAX_THREADS,
             f"--decode_workers must be between 1 and {MAX_THREADS} ({os.cpu_count()} cores here), got "
             f"{self.decode_workers}"),
            (not (self.lexicon_free and self.lexicon), "--lexicon and --lexicon_free: pass one of them"),
        ))  # fmt: skip

    @property
    def workers(self) -> int:
        return self.decode_workers or os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class DecodingOptions:
    decoder: str = option("greedy", "how logits become text: greedy (best token per frame) or beam (CTC beam "
                                    "search, with an n-gram LM given --lm)", choices=DECODERS.names)
    beam: BeamOptions = group(BeamOptions)

    def __post_init__(self) -> None:
        DECODERS.check(self.decoder)

    def described(self) -> list[str] | None:
        """What besides its name decides the decoder's text, for the report (None: nothing)."""
        if self.decoder != "beam":
            return None
        b = self.beam
        return [f"beam_size={b.beam_size}", f"beam_size_token={b.beam_size_token}",
                f"beam_threshold={b.beam_threshold}", f"lm_weight={b.lm_weight}", f"word_score={b.word_score}",
                f"lexicon_free={b.lexicon_free}"]  # fmt: skip

    def files(self) -> dict[str, Path | None]:
        """The files the decoder reads, which its text depends on."""
        return {"lm": self.beam.lm, "lexicon": self.beam.lexicon} if self.decoder == "beam" else {}


class Decoder(Protocol):
    """A CTC decoder (registry.DECODERS), built from the vocabulary and the decoding options: one utterance's
    logits (frames x vocab size) -> its words with the frames each spans. `parallel`: costly enough to run in
    worker processes (it must then pickle)."""

    parallel: bool

    def __call__(self, logits: np.ndarray) -> list[WordSpan]: ...


def make_decoder(options: DecodingOptions, vocab: Sequence[str]) -> Decoder:
    """The decoder the options name, with everything it reads checked now, before any work."""
    return DECODERS.load(options.decoder)(tuple(vocab), options.beam)


@dataclass
class Decoded:
    """How long decoding took (inside the decoder, reading the logits aside), for the report beside the
    model's own figures."""

    seconds: float = 0.0
    utterances: int = 0
    workers: int = 1


_worker_decoder: Decoder | None = None


def _start_worker(decoder: Decoder) -> None:
    """A worker leaves Ctrl-C to the main process, which ends the pool and says what was kept in one line."""
    global _worker_decoder
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_decoder = decoder


def _decode_task(task: list[tuple[str, np.ndarray]]) -> list[tuple[str, list[WordSpan]]]:
    assert _worker_decoder is not None, "started by _start_worker"
    return [(utt_id, _worker_decoder(logits)) for utt_id, logits in task]


def decode_all(
    decoder: Decoder, utterances: Iterable[tuple[str, np.ndarray]], workers: int, timing: Decoded
) -> Iterator[tuple[str, list[WordSpan]]]:
    """(utterance, its words) for each (utterance, logits), in order; a costly decoder runs in `workers`
    processes, a few utterances a task, and no more utterances are read ahead than the workers have in hand,
    so memory stays bounded whatever the corpus."""
    if not decoder.parallel or workers == 1:
        for utt_id, logits in utterances:
            started = time.perf_counter()
            words = decoder(logits)
            timing.seconds += time.perf_counter() - started
            timing.utterances += 1
            yield utt_id, words
        return
    timing.workers = workers
    context = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                          else "spawn")  # fmt: skip
    source = iter(utterances)
    with context.Pool(workers, initializer=_start_worker, initargs=(decoder,)) as pool:
        while tasks := [t for t in (list(islice(source, UTTERANCES_PER_TASK)) for _ in range(4 * workers)) if t]:
            started = time.perf_counter()
            results = pool.map(_decode_task, tasks)
            timing.seconds += time.perf_counter() - started
            for done in results:
                timing.utterances += len(done)
                yield from done
