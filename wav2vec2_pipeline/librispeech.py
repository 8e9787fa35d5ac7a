"""Reading a LibriSpeech split as unpacked: `<spk>/<chap>/<spk>-<chap>-<utt>.flac` + `<spk>-<chap>.trans.txt`."""

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from wav2vec2_pipeline.errors import PipelineError

AUDIO_SUFFIX = ".flac"
TRANSCRIPT_SUFFIX = ".trans.txt"
# Byte-order marks, UTF-32's first: UTF-32-LE's mark begins with UTF-16-LE's.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "UTF-32-LE"),
    (codecs.BOM_UTF32_BE, "UTF-32-BE"),
    (codecs.BOM_UTF8, "UTF-8"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE"),
    (codecs.BOM_UTF16_BE, "UTF-16-BE"),
)
# What editors count as a line end; str.splitlines would also split on form feeds and other separators.
LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    audio_path: Path
    transcript: str | None
    """None where the input has none: transcribed, not scored."""


def _line_number(text_before: str) -> int:
    return len(LINE_END.split(text_before))


def decode_text(path: Path, data: bytes) -> str:
    """The text by its byte-order mark, else strict UTF-8: a guessed encoding would change transcripts silently."""
    encoding, mark = next(((name, mark) for mark, name in BYTE_ORDER_MARKS if data.startswith(mark)), ("UTF-8", b""))
    body = data[len(mark) :]
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as error:
        line_no = _line_number(body[: error.start].decode(encoding, errors="replace"))
        bad = body[error.start : error.end].hex(" ")
        if mark:
            raise PipelineError(
                f"{path}:{line_no}: bytes {bad} are not {encoding}, as its byte-order mark says; save it as UTF-8"
            ) from error
        raise PipelineError(
            f"{path}:{line_no}: byte 0x{bad[:2]} is not UTF-8 (was it saved as Latin-1 or Windows-1252?); "
            "save it as UTF-8"
        ) from error
    if "\x00" in text:
        line_no = _line_number(text[: text.index("\x00")])
        raise PipelineError(
            f"{path}:{line_no}: NUL character: is it UTF-16 without a byte-order mark? Save it as UTF-8"
        )
    return text


def _transcript_lines(path: Path) -> dict[str, tuple[int, str]]:
    """{utt_id: (line number, transcript)}, whitespace of any kind collapsed to single spaces."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}; check that it exists and is readable") from error
    entries: dict[str, tuple[int, str]] = {}
    for line_no, line in enumerate(LINE_END.split(decode_text(path, data)), start=1):
        fields = line.lstrip("\ufeff").split(maxsplit=1)  # a mark mid-file is left by concatenating files
        if not fields:
            continue
        if len(fields) == 1:
            raise PipelineError(f"{path}:{line_no}: expected '<utt_id> <TRANSCRIPT>', got {line!r}")
        utt_id, text = fields
        if utt_id in entries:
            raise PipelineError(
                f"{path}:{line_no}: utterance {utt_id} is listed twice (first on line {entries[utt_id][0]}); "
                "keep one line for it"
            )
        entries[utt_id] = (line_no, " ".join(text.split()))
    return entries


def parse_transcripts(path: Path) -> dict[str, str]:
    """`<utt_id> <TRANSCRIPT>` lines of one trans.txt file -> {utt_id: transcript}."""
    return {utt_id: text for utt_id, (_, text) in _transcript_lines(path).items()}


def _cannot_list(error: OSError) -> NoReturn:
    raise PipelineError(f"cannot list {error.filename}: {error.strerror}; check that it is readable") from error


def files_under(root: Path) -> Iterator[Path]:
    """Every file under `root` in sorted order, through linked directories too (Path.rglob skips them); a
    directory reached twice, as through a link to an ancestor, is walked once."""
    walked: set[tuple[int, int]] = set()
    for dir_path, dir_names, file_names in os.walk(root, onerror=_cannot_list, followlinks=True):
        try:
            status = os.stat(dir_path)
        except OSError as error:
            _cannot_list(error)
        if (status.st_dev, status.st_ino) in walked:
            dir_names.clear()
            continue
        walked.add((status.st_dev, status.st_ino))
        dir_names.sort()
        yield from (Path(dir_path) / name for name in sorted(file_names))


def file_identity(path: Path) -> tuple[int, int]:
    """(device, inode) of what `path` is or links to, so a file reached through two links counts once."""
    try:
        status = path.stat()
    except OSError as error:
        if path.is_symlink():
            raise PipelineError(
                f"{path} is a broken link (to {os.readlink(path)}): restore what it points to or remove it"
            ) from error
        raise PipelineError(f"cannot read {path}: {error.strerror}; check that it is readable") from error
    return status.st_dev, status.st_ino


def find_utterances(root: Path) -> list[Utterance]:
    """Every utterance under `root`, sorted by id; audio and transcripts must match one to one."""
    if not root.is_dir():
        raise PipelineError(f"input dir {root} does not exist; pass a LibriSpeech split such as LibriSpeech/test-clean")
    audio: dict[str, tuple[Path, tuple[int, int]]] = {}
    transcripts: dict[str, tuple[Path, int, str]] = {}
    transcript_files: set[tuple[int, int]] = set()
    for path in files_under(root):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue  # hidden: .git, macOS's ._ resource forks
        if path.name.endswith(AUDIO_SUFFIX):
            utt_id, identity = path.name.removesuffix(AUDIO_SUFFIX), file_identity(path)
            if utt_id in audio and audio[utt_id][1] != identity:
                raise PipelineError(
                    f"utterance {utt_id} has two different audio files, {audio[utt_id][0]} and {path}: remove one"
                )
            audio.setdefault(utt_id, (path, identity))
        elif path.name.endswith(TRANSCRIPT_SUFFIX):
            identity = file_identity(path)
            if identity in transcript_files:
                continue
            transcript_files.add(identity)
            for utt_id, (line_no, text) in _transcript_lines(path).items():
                if utt_id in transcripts:
                    first_path, first_line, _ = transcripts[utt_id]
                    raise PipelineError(
                        f"{path}:{line_no}: utterance {utt_id} is also listed at {first_path}:{first_line}; "
                        "keep one line for it"
                    )
                transcripts[utt_id] = (path, line_no, text)
    if not audio:
        raise PipelineError(
            f"no {AUDIO_SUFFIX} files under {root}; expected a LibriSpeech split "
            f"(<spk>/<chap>/<spk>-<chap>-<utt>{AUDIO_SUFFIX} with <spk>-<chap>{TRANSCRIPT_SUFFIX})"
        )
    no_text = sorted(set(audio) - set(transcripts))
    if no_text:
        raise PipelineError(
            f"{len(no_text)} audio file(s) have no transcript line, e.g. {audio[no_text[0]][0]}: "
            f"add '<utt_id> <TRANSCRIPT>' to its {TRANSCRIPT_SUFFIX} or remove the audio"
        )
    no_audio = sorted(set(transcripts) - set(audio))
    if no_audio:
        raise PipelineError(
            f"{len(no_audio)} transcript line(s) have no audio, e.g. {no_audio[0]} in "
            f"{transcripts[no_audio[0]][0]}: restore {no_audio[0]}{AUDIO_SUFFIX} or remove the line"
        )
    return [Utterance(utt_id, audio[utt_id][0], transcripts[utt_id][2]) for utt_id in sorted(audio)]
