"""Transcripts in the formats people load them into: JSON lines with word times, SubRip subtitles, NIST CTM.

Each format is a writer (registry.WRITERS): the flag that names its path, a check of that path before any work
(an existing file must be an earlier output of its kind), and the write itself."""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_text, check_output_dir, check_output_file, first_line, make_dir

SRT_LINE_CHARS = 42
"""The usual subtitle line length: words are packed into cues of at most this many characters."""


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the utterance to its first non-blank frame."""
    end: float
    """Seconds to the end of its last non-blank frame."""


@dataclass(frozen=True)
class Transcript:
    utt_id: str
    audio_filepath: str
    text: str
    words: list[Word]


def jsonl(transcripts: Iterable[Transcript]) -> str:
    lines = []
    for t in transcripts:
        words = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in t.words]
        lines.append(json.dumps({"id": t.utt_id, "audio_filepath": t.audio_filepath, "text": t.text, "words": words}))
    return "".join(line + "\n" for line in lines)


def _srt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def srt(words: list[Word]) -> str:
    """Cues of consecutive words up to `SRT_LINE_CHARS` characters, each from its first word's start to its
    last word's end."""
    cues: list[list[Word]] = []
    for word in words:
        if cues and len(" ".join(w.word for w in [*cues[-1], word])) <= SRT_LINE_CHARS:
            cues[-1].append(word)
        else:
            cues.append([word])
    return "".join(
        f"{index}\n{_srt_time(cue[0].start)} --> {_srt_time(cue[-1].end)}\n{' '.join(w.word for w in cue)}\n\n"
        for index, cue in enumerate(cues, start=1)
    )


def ctm(transcripts: Iterable[Transcript]) -> str:
    """NIST CTM: `<utterance> <channel> <start> <duration> <word>` per word, channel 1, seconds."""
    return "".join(
        f"{t.utt_id} 1 {w.start:.3f} {w.end - w.start:.3f} {w.word}\n" for t in transcripts for w in t.words
    )


def is_transcripts(path: Path) -> bool:
    """An empty file, or one whose first line is a transcripts.jsonl line: safe to overwrite."""
    line = first_line(path)
    return path.stat().st_size == 0 or (line is not None and line.startswith('{"id": ') and '"words": [' in line)


def is_ctm(path: Path) -> bool:
    """An empty file, or one whose first line is a CTM line of ours: safe to overwrite."""
    fields = (first_line(path) or "").split()
    return path.stat().st_size == 0 or (
        len(fields) == 5 and fields[1] == "1" and all(f.replace(".", "", 1).isdigit() for f in fields[2:4])
    )


def write_srt_files(directory: Path, transcripts: Iterable[Transcript]) -> None:
    """One `<id>.srt` per utterance (an id with `/` in it, from a folder's paths, makes subdirs)."""
    inside = directory.resolve()
    for t in transcripts:
        path = directory / f"{t.utt_id}.srt"
        if not path.resolve().is_relative_to(inside):
            raise PipelineError(f"utterance id {t.utt_id!r} would write {path} outside --srt {directory}")
        atomic_write_text(path, srt(t.words))


class Writer(Protocol):
    flag: str

    def check(self, path: Path, keep: tuple[Path, ...]) -> None:
        """Refuse, before any work, a path this writer must not write (`keep`: the stage's inputs)."""

    def write(self, path: Path, transcripts: list[Transcript]) -> None: ...


@dataclass(frozen=True)
class FileWriter:
    """One file of every transcript, in one format; an existing file is replaced only if it is one of ours."""

    flag: str
    ours: Callable[[Path], bool]
    render: Callable[[Iterable[Transcript]], str]

    def check(self, path: Path, keep: tuple[Path, ...]) -> None:
        check_output_file(path, self.flag, self.ours, keep)

    def write(self, path: Path, transcripts: list[Transcript]) -> None:
        atomic_write_text(path, self.render(transcripts))


class SrtWriter:
    """A dir of one `<id>.srt` per utterance, made before any work: a dir that cannot be made stops the stage
    with nothing written."""

    flag = "--srt"

    def check(self, path: Path, keep: tuple[Path, ...]) -> None:
        check_output_dir(path, self.flag)
        make_dir(path)

    def write(self, path: Path, transcripts: list[Transcript]) -> None:
        write_srt_files(path, transcripts)


JSONL = FileWriter("--transcripts", is_transcripts, jsonl)
CTM = FileWriter("--ctm", is_ctm, ctm)
SRT = SrtWriter()
