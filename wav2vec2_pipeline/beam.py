"""CTC beam search with a word n-gram LM, by flashlight-text (whose wheel carries KenLM): lexicon-constrained by
default (the words of a lexicon, given or read from an ARPA LM), or lexicon-free, letter by letter.

Everything the search reads is checked when the decoder is built, before any logits are read: the LM's kind
(ARPA or KenLM binary), and that its words and the lexicon's are spelled in the model's tokens. The search
itself is built once per process, on first use (flashlight's objects do not pickle)."""

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wav2vec2_pipeline.ctc import WordSpan, path_words
from wav2vec2_pipeline.decoding import BeamOptions
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import BLANK_TOKEN, WORD_DELIMITER

KENLM_BINARY_MAGIC = b"mmap lm http://kheafield.com/code"
ARPA_HEADER = "\\data\\"
LM_MARKERS = ("<s>", "</s>", "<unk>")
UNK_WORD = "<unk>"
EXAMPLES = 3
STDERR = 2


def lm_kind(path: Path) -> str:
    """`arpa` or `binary`, or a one-line error for a file that is neither (or cannot be read)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise PipelineError(f"--lm {path}: cannot read it ({error.strerror or error})") from error
    if head.startswith(KENLM_BINARY_MAGIC):
        return "binary"
    if head.lstrip().startswith(ARPA_HEADER.encode()):
        return "arpa"
    raise PipelineError(f"--lm {path} is neither an ARPA file (it would start with {ARPA_HEADER}) nor a KenLM "
                        "binary (build_binary's output): pass an n-gram LM in one of those forms")  # fmt: skip


def arpa_words(path: Path) -> list[str]:
    """The unigrams of an ARPA LM: its vocabulary."""
    words, inside = [], False
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside and ((line.startswith("\\") and line.endswith(":")) or line == "\\end\\"):
                break
            elif inside and line:
                fields = line.split()
                if len(fields) >= 2:
                    words.append(fields[1])
    if not words:
        raise PipelineError(f"--lm {path}: an ARPA file without a \\1-grams: section")
    return words


def read_lexicon(path: Path) -> dict[str, list[list[str]]]:
    """`WORD T O K E N S |` per line (flashlight's format): word -> its spellings."""
    lexicon: dict[str, list[list[str]]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"--lexicon {path}: cannot read it as UTF-8 text ({error})") from error
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2:
            raise PipelineError(f"--lexicon {path}, line {number}: {line.strip()!r} has a word and no spelling; "
                                "expected `WORD W O R D |`")  # fmt: skip
        lexicon.setdefault(fields[0], []).append(fields[1:])
    if not lexicon:
        raise PipelineError(f"--lexicon {path} lists no word")
    return lexicon


def spelled(words: Sequence[str]) -> dict[str, list[list[str]]]:
    """A lexicon of `words`, each spelled letter by letter, ending at the word delimiter."""
    return {word: [[*word, WORD_DELIMITER]] for word in words if word not in LM_MARKERS}


def check_spelling(words: Sequence[str], vocab: Sequence[str], what: str) -> None:
    """Words spelled in the model's tokens: the same letter case, no letter the vocabulary has not."""
    letters = {token for token in vocab if len(token) == 1 and token != WORD_DELIMITER}
    plain = [word for word in words if word not in LM_MARKERS]
    other_case = [w for w in plain if any(c.swapcase() in letters and c not in letters for c in w)]
    if other_case:
        case = "upper" if all(c.isupper() for c in letters if c.isalpha()) else "lower"
        raise PipelineError(
            f"{what}: {len(other_case)} of {len(plain)} words are not in {case} case like the model's tokens (e.g. "
            f"{', '.join(map(repr, other_case[:EXAMPLES]))}): convert its words to {case} case"
        )
    foreign = [w for w in plain if not set(w) <= letters]
    if foreign:
        shown = ", ".join(f"{w!r} ({''.join(sorted(set(w) - letters))})" for w in foreign[:EXAMPLES])
        raise PipelineError(
            f"{what}: {len(foreign)} of {len(plain)} words hold letters the model's vocabulary has not (e.g. {shown}): "
            "remove or respell them"
        )


@dataclass
class BeamDecoder:
    """registry.DECODERS's `beam`: built (and everything it reads checked) where the options are."""

    vocab: tuple[str, ...]
    options: BeamOptions
    parallel = True
    lexicon: dict[str, list[list[str]]] | None = field(init=False, default=None)
    _search: Any = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if importlib.util.find_spec("flashlight") is None:
            raise PipelineError("--decoder beam needs flashlight-text: pip install -r requirements.txt")
        options = self.options
        kind = lm_kind(options.lm) if options.lm is not None else None
        words = arpa_words(options.lm) if kind == "arpa" else None
        if options.lexicon_free:
            if words is not None:  # the LM is over the model's tokens: its words are tokens
                unknown = [w for w in words if w not in LM_MARKERS and w not in self.vocab]
                if unknown:
                    raise PipelineError(f"--lm {options.lm} with --lexicon_free must be over the model's tokens; "
                                        f"{len(unknown)} of its words are not (e.g. {', '.join(unknown[:EXAMPLES])})")
            return
        if options.lexicon is not None:
            self.lexicon = read_lexicon(options.lexicon)
            check_spelling(list(self.lexicon), self.vocab, f"--lexicon {options.lexicon}")
            bad = sorted({t for spellings in self.lexicon.values() for s in spellings for t in s} - set(self.vocab))
            if bad:
                raise PipelineError(f"--lexicon {options.lexicon} spells words with tokens the model has not: "
                                    f"{', '.join(bad[:EXAMPLES])}")  # fmt: skip
        elif words is not None:
            self.lexicon = spelled(words)
            if not self.lexicon:
                raise PipelineError(f"--lm {options.lm} has no word besides {', '.join(LM_MARKERS)}: nothing to spell")
        elif options.lm is not None:
            raise PipelineError(f"--lm {options.lm} is a KenLM binary, whose words cannot be listed: pass --lexicon "
                                "(its words, spelled), or the ARPA file")  # fmt: skip
        else:
            raise PipelineError("--decoder beam needs the words it may spell: --lm (an ARPA LM), --lexicon, or "
                                "--lexicon_free")  # fmt: skip
        if words is not None:
            check_spelling(words, self.vocab, f"--lm {options.lm}")
        self._search = self._built()

    def _built(self) -> Any:
        """The search, built here once so that an LM KenLM cannot load (truncated, malformed, too big) stops the
        stage in one line before any logits are read; each worker process builds its own."""
        try:
            return self._build()
        except (RuntimeError, ValueError, TypeError, MemoryError) as error:
            files = " ".join(f"{flag} {path}" for flag, path in (("--lm", self.options.lm),
                                                                 ("--lexicon", self.options.lexicon)) if path)
            detail = " ".join(str(error).split())[:300] or type(error).__name__
            raise PipelineError(f"the beam search cannot be built from {files or 'its options'}: {detail}") from error

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_search": None}  # built again in each process

    def __call__(self, logits: np.ndarray) -> list[WordSpan]:
        if self._search is None:
            self._search = self._built()
        shifted = logits - logits.max(axis=1, keepdims=True)
        emissions = np.ascontiguousarray(shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True)), np.float32)
        frames = emissions.shape[0]
        if frames == 0:
            return []
        best = self._search.decode(emissions.ctypes.data, frames, emissions.shape[1])[0]
        path = np.asarray(best.tokens[1 : frames + 1])  # flashlight adds a word boundary at each end
        return path_words(path, self.vocab)

    def _build(self) -> Any:
        from flashlight.lib.text import decoder as fl
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        options = self.options
        tokens = Dictionary(list(self.vocab))
        blank, boundary = self.vocab.index(BLANK_TOKEN), self.vocab.index(WORD_DELIMITER)
        tokens_tried = min(options.beam_size_token or len(self.vocab), len(self.vocab))
        beam = {"beam_size": options.beam_size, "beam_size_token": tokens_tried,
                "beam_threshold": options.beam_threshold, "lm_weight": options.lm_weight, "sil_score": 0.0,
                "log_add": False, "criterion_type": fl.CriterionType.CTC}  # fmt: skip
        if self.lexicon is None:
            with silenced(STDERR):
                lm = KenLM(str(options.lm), tokens) if options.lm is not None else fl.ZeroLM()
            return fl.LexiconFreeDecoder(fl.LexiconFreeDecoderOptions(**beam), lm, boundary, blank, [])
        words = Dictionary([UNK_WORD, *(w for w in self.lexicon if w != UNK_WORD)])
        words.set_default_index(words.get_index(UNK_WORD))
        with silenced(STDERR):  # KenLM draws its loading progress there, once per process
            lm = KenLM(str(options.lm), words) if options.lm is not None else fl.ZeroLM()
        trie = fl.Trie(len(self.vocab), boundary)
        start = lm.start(False)
        for word, spellings in self.lexicon.items():
            index = words.get_index(word)
            _, score = lm.score(start, index)
            for spelling in spellings:
                trie.insert([tokens.get_index(t) for t in spelling], index, score)
        trie.smear(fl.SmearingMode.MAX)
        lexicon_options = fl.LexiconDecoderOptions(**beam, word_score=options.word_score, unk_score=float("-inf"))
        return fl.LexiconDecoder(lexicon_options, trie, lm, boundary, blank, words.get_index(UNK_WORD), [], False)


@contextlib.contextmanager
def silenced(fd: int) -> Iterator[None]:
    """File descriptor `fd` to /dev/null for the block: C++ libraries write there past Python's sys.stderr (a
    failure still comes back as an exception)."""
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
