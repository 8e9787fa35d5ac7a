"""Reading a LibriSpeech split as unpacked: `<spk>/<chap>/<spk>-<chap>-<utt>.flac` + `<spk>-<chap>.trans.txt`."""

from dataclasses import dataclass
from pathlib import Path

from wav2vec2_pipeline.errors import PipelineError

AUDIO_SUFFIX = ".flac"
TRANSCRIPT_SUFFIX = ".trans.txt"


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    audio_path: Path
    transcript: str


def parse_transcripts(path: Path) -> dict[str, str]:
    """`<utt_id> <TRANSCRIPT>` lines of one trans.txt file -> {utt_id: transcript}."""
    transcripts: dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        if not text.strip():
            raise PipelineError(f"{path}:{line_no}: expected '<utt_id> <TRANSCRIPT>', got {line!r}")
        if utt_id in transcripts:
            raise PipelineError(f"{path}:{line_no}: utterance {utt_id} is listed twice")
        transcripts[utt_id] = " ".join(text.split())
    return transcripts


def find_utterances(root: Path) -> list[Utterance]:
    """Every utterance under `root`, sorted by id; audio and transcripts must match one to one."""
    if not root.is_dir():
        raise PipelineError(f"input dir {root} does not exist; pass a LibriSpeech split such as LibriSpeech/test-clean")
    audio = {path.name.removesuffix(AUDIO_SUFFIX): path for path in root.rglob(f"*{AUDIO_SUFFIX}")}
    transcripts: dict[str, str] = {}
    transcript_files: dict[str, Path] = {}
    for path in sorted(root.rglob(f"*{TRANSCRIPT_SUFFIX}")):
        for utt_id, text in parse_transcripts(path).items():
            transcripts[utt_id] = text
            transcript_files[utt_id] = path
    if not audio:
        raise PipelineError(
            f"no {AUDIO_SUFFIX} files under {root}; expected a LibriSpeech split "
            f"(<spk>/<chap>/<spk>-<chap>-<utt>{AUDIO_SUFFIX} with <spk>-<chap>{TRANSCRIPT_SUFFIX})"
        )
    no_text = sorted(set(audio) - set(transcripts))
    if no_text:
        raise PipelineError(
            f"{len(no_text)} audio file(s) have no transcript line, e.g. {audio[no_text[0]]}: "
            f"add '<utt_id> <TRANSCRIPT>' to its {TRANSCRIPT_SUFFIX} or remove the audio"
        )
    no_audio = sorted(set(transcripts) - set(audio))
    if no_audio:
        raise PipelineError(
            f"{len(no_audio)} transcript line(s) have no audio, e.g. {no_audio[0]} in "
            f"{transcript_files[no_audio[0]]}: restore {no_audio[0]}{AUDIO_SUFFIX} or remove the line"
        )
    return [Utterance(utt_id, audio[utt_id], transcripts[utt_id]) for utt_id in sorted(audio)]
