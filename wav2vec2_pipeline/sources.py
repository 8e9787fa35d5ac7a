"""What `--input` names: a LibriSpeech split, a JSONL manifest (NeMo's convention), or a plain folder of audio.

Each gives utterances with an id, an audio file and, where there is one, a transcript; an utterance without
one is transcribed but not scored.
"""

import json
import re
from pathlib import Path

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.librispeech import (
    AUDIO_SUFFIX,
    LINE_END,
    TRANSCRIPT_SUFFIX,
    Utterance,
    decode_text,
    file_identity,
    files_under,
    find_utterances,
)
from wav2vec2_pipeline.registry import SOURCES

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf", ".w64", ".rf64")
"""What soundfile (libsndfile) reads; matched without regard to case."""
MANIFEST_SUFFIXES = (".jsonl", ".json")
_WHITESPACE = re.compile(r"\s+")


def _id_from_path(relative: Path) -> str:
    """`spk1/take 2.wav` -> `spk1/take_2`: unique where the paths are, and free of the spaces that would break
    the ground-truth file's `<id> <text>` lines."""
    return _WHITESPACE.sub("_", relative.with_suffix("").as_posix())


def check_id(utt_id: str, where: str) -> str:
    """An id names files (`--srt DIR/<id>.srt`) and lines (`<id> <text>`): printable, no spaces, and a relative
    path that stays inside its dir (no `..`, no leading `/`)."""
    parts = utt_id.split("/")
    if not utt_id or not utt_id.isprintable() or _WHITESPACE.search(utt_id) or any(p in ("", ".", "..") for p in parts):
        raise PipelineError(
            f"{where}: id {utt_id!r} must be printable, without spaces, and a relative name without '.' or '..' "
            "parts (ids name the subtitle files)"
        )
    return utt_id


def _unique(utterances: list[Utterance]) -> list[Utterance]:
    """Sorted by id; a file reached through two links counts once, two files with one id are both named."""
    seen: dict[str, Utterance] = {}
    for utterance in utterances:
        first = seen.setdefault(utterance.utt_id, utterance)
        if first is not utterance and file_identity(first.audio_path) != file_identity(utterance.audio_path):
            raise PipelineError(
                f"{first.audio_path} and {utterance.audio_path} both give the id {utterance.utt_id} (one recording "
                "in two formats?): remove or rename one"
            )
    return [seen[utt_id] for utt_id in sorted(seen)]


def audio_folder(root: Path) -> list[Utterance]:
    """Every audio file under `root`, at any depth, links followed, without transcripts; ids from the paths."""
    found = [p for p in files_under(root) if p.suffix.lower() in AUDIO_SUFFIXES
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]  # hidden: .git, ._x.wav ...
    if not found:
        raise PipelineError(
            f"no {AUDIO_SUFFIX} files under {root} (nor {', '.join(AUDIO_SUFFIXES[1:])}): pass a LibriSpeech split "
            f"(<spk>/<chap>/<spk>-<chap>-<utt>{AUDIO_SUFFIX} with <spk>-<chap>{TRANSCRIPT_SUFFIX}), a folder of "
            "audio, or a JSONL manifest"
        )
    return _unique([Utterance(check_id(_id_from_path(p.relative_to(root)), str(p)), p, None) for p in found])


def _field(entry: dict, key: str, kind: type, where: str, required: bool = False) -> object:
    value = entry.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = {str: "a string", float: "a number"}.get(kind, kind.__name__)
        raise PipelineError(f"{where}: {key!r} must be {expected}, got {value!r:.60}")
    return value


def jsonl_manifest(path: Path) -> list[Utterance]:
    """One JSON object per line: `audio_filepath` (relative to the manifest's dir, or absolute), and optional
    `text`, `duration` and `id` (else the id comes from the audio's path)."""
    try:
        text = decode_text(path, path.read_bytes())
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}") from error
    base = path.parent.resolve()
    utterances, where, audio_lines = [], {}, {}
    for line_no, line in enumerate(LINE_END.split(text), start=1):
        if not line.strip():
            continue
        at = f"{path}:{line_no}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise PipelineError(f"{at}: not a JSON object ({error.msg}); a manifest has one per line") from error
        if not isinstance(entry, dict):
            raise PipelineError(f"{at}: not a JSON object; a manifest has one per line")
        audio = (base / str(_field(entry, "audio_filepath", str, at, required=True))).resolve()
        if not audio.is_file():
            raise PipelineError(f"{at}: audio file {audio} not found (a relative path is taken from {base})")
        if audio in audio_lines:
            raise PipelineError(f"{at}: {audio} is also on {audio_lines[audio]}; list each recording once")
        audio_lines[audio] = f"line {line_no}"
        _field(entry, "duration", float, at)
        if entry.get("offset") not in (None, 0, 0.0):
            raise PipelineError(f"{at}: 'offset' (a segment of a longer file) is not supported: cut the segment into "
                                "a file of its own")  # fmt: skip
        transcript = _field(entry, "text", str, at)
        if transcript is not None and not str(transcript).strip():
            raise PipelineError(f"{at}: 'text' is empty; leave it out to transcribe the audio without scoring it")
        given_id = _field(entry, "id", str, at)
        relative = audio.relative_to(base) if audio.is_relative_to(base) else Path(*audio.parts[1:])
        utt_id = check_id(str(given_id) if given_id is not None else _id_from_path(relative), at)
        if utt_id in where:
            raise PipelineError(f"{at}: id {utt_id} is also on {where[utt_id]}; give each line its own id")
        where[utt_id] = f"line {line_no}"
        text_value = " ".join(str(transcript).split()) if transcript is not None else None
        utterances.append(Utterance(utt_id, audio, text_value))
    if not utterances:
        raise PipelineError(f"{path} lists no audio: expected one JSON object per line with 'audio_filepath'")
    return sorted(utterances, key=lambda u: u.utt_id)


class JsonlManifest:
    """A JSONL manifest (NeMo's convention): one object per line with `audio_filepath`, optional text and id."""

    @staticmethod
    def accepts(source: Path) -> bool:
        return source.is_file()

    @staticmethod
    def read(source: Path) -> list[Utterance]:
        if source.suffix.lower() not in MANIFEST_SUFFIXES:
            raise PipelineError(
                f"--input {source} is a file but not a JSONL manifest (.jsonl); pass a manifest, a LibriSpeech "
                "split or a folder of audio"
            )
        return jsonl_manifest(source)


class LibriSpeechSplit:
    """A dir holding `*.trans.txt` files: `<spk>/<chap>/<spk>-<chap>-<utt>.flac`."""

    @staticmethod
    def accepts(source: Path) -> bool:
        return source.is_dir() and any(p.name.endswith(TRANSCRIPT_SUFFIX) for p in files_under(source))

    @staticmethod
    def read(source: Path) -> list[Utterance]:
        unread = [p for p in files_under(source) if p.suffix.lower() in AUDIO_SUFFIXES and p.suffix != AUDIO_SUFFIX]
        if unread:
            raise PipelineError(
                f"{source} is a LibriSpeech split (it holds {TRANSCRIPT_SUFFIX} files) but also {len(unread)} audio "
                f"file(s) that layout does not read, e.g. {unread[0]}: convert them to {AUDIO_SUFFIX}, or list "
                "everything in a JSONL manifest"
            )
        return [Utterance(check_id(u.utt_id, str(u.audio_path)), u.audio_path, u.transcript)
                for u in find_utterances(source)]  # fmt: skip


class AudioFolder:
    """Any other dir: audio files at any depth, transcribed only."""

    @staticmethod
    def accepts(source: Path) -> bool:
        return source.is_dir()

    read = staticmethod(audio_folder)


def find_inputs(source: Path) -> list[Utterance]:
    """The utterances `--input` names, sorted by id, read by the first source kind (registry.SOURCES) that
    accepts it: a JSONL manifest, a LibriSpeech split, or any other dir as a folder of audio to transcribe."""
    for name in SOURCES.names:
        kind = SOURCES.load(name)
        if kind.accepts(source):
            return kind.read(source)
    raise PipelineError(
        f"--input {source} does not exist; pass a LibriSpeech split such as LibriSpeech/test-clean, a folder "
        "of audio, or a JSONL manifest"
    )
