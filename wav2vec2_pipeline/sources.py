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

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")
"""What soundfile (libsndfile) reads; matched without regard to case."""
MANIFEST_SUFFIXES = (".jsonl", ".json")
_WHITESPACE = re.compile(r"\s+")


def _id_from_path(relative: Path) -> str:
    """`spk1/take 2.wav` -> `spk1/take_2`: unique where the paths are, and free of the spaces that would break
    the ground-truth file's `<id> <text>` lines."""
    return _WHITESPACE.sub("_", relative.with_suffix("").as_posix())


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
    found = [p for p in files_under(root) if p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("._")]
    if not found:
        raise PipelineError(
            f"no {AUDIO_SUFFIX} files under {root} (nor {', '.join(AUDIO_SUFFIXES[1:])}): pass a LibriSpeech split "
            f"(<spk>/<chap>/<spk>-<chap>-<utt>{AUDIO_SUFFIX} with <spk>-<chap>{TRANSCRIPT_SUFFIX}), a folder of "
            "audio, or a JSONL manifest"
        )
    return _unique([Utterance(_id_from_path(p.relative_to(root)), p, None) for p in found])


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
    base = path.parent
    utterances, where = [], {}
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
        audio = Path(str(_field(entry, "audio_filepath", str, at, required=True)))
        audio = audio if audio.is_absolute() else base / audio
        if not audio.is_file():
            raise PipelineError(f"{at}: audio file {audio} not found (a relative path is taken from {base})")
        _field(entry, "duration", float, at)
        transcript = _field(entry, "text", str, at)
        given_id = _field(entry, "id", str, at)
        if given_id is not None and (not given_id or _WHITESPACE.search(given_id)):
            raise PipelineError(f"{at}: id {given_id!r} must be non-empty and without spaces")
        relative = audio.relative_to(base) if audio.is_relative_to(base) else Path(*audio.parts[1:])
        utt_id = given_id or _id_from_path(relative)
        if utt_id in where:
            raise PipelineError(f"{at}: id {utt_id} is also on {where[utt_id]}; give each line its own id")
        where[utt_id] = f"line {line_no}"
        text_value = " ".join(str(transcript).split()) if transcript is not None else None
        utterances.append(Utterance(utt_id, audio, text_value))
    if not utterances:
        raise PipelineError(f"{path} lists no audio: expected one JSON object per line with 'audio_filepath'")
    return sorted(utterances, key=lambda u: u.utt_id)


def find_inputs(source: Path) -> list[Utterance]:
    """The utterances `--input` names, sorted by id: a JSONL manifest, a LibriSpeech split (a dir holding
    `*.trans.txt` files), or any other dir as a folder of audio to transcribe."""
    if source.is_file():
        if source.suffix.lower() not in MANIFEST_SUFFIXES:
            raise PipelineError(
                f"--input {source} is a file but not a JSONL manifest (.jsonl); pass a manifest, a LibriSpeech "
                "split or a folder of audio"
            )
        return jsonl_manifest(source)
    if not source.is_dir():
        raise PipelineError(
            f"--input {source} does not exist; pass a LibriSpeech split such as LibriSpeech/test-clean, a folder "
            "of audio, or a JSONL manifest"
        )
    if any(p.name.endswith(TRANSCRIPT_SUFFIX) for p in files_under(source)):
        return find_utterances(source)
    return audio_folder(source)
