"""Stage 4: tie the logits to the batch map, stitch each utterance's logits from its rows, decode, and score.

Logits are decoded only when they can be vouched for: a finished compile.py run, computed from exactly the
input bins the batch map describes, and each bin still holding what compile.py wrote. Bins are read one at a
time and each utterance is decoded as soon as its last row has passed, so memory does not grow with the data.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from tqdm import tqdm

from wav2vec2_pipeline import records
from wav2vec2_pipeline.batchmap import CHUNKED, CUT_OFF, EMPTY, SKIPPED, BatchMap, read_ground_truth, read_map
from wav2vec2_pipeline.binfile import as_array, read_bytes, shape_text
from wav2vec2_pipeline.decoding import Decoded, DecodingOptions, decode_all, make_decoder
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.manifests import LogitsManifest, logits_key
from wav2vec2_pipeline.model import Geometry, load_geometry, load_vocab
from wav2vec2_pipeline.options import group, option
from wav2vec2_pipeline.outputs import Transcript, Word
from wav2vec2_pipeline.planning import stitch
from wav2vec2_pipeline.provenance import bytes_sha256, file_sha256
from wav2vec2_pipeline.rundir import RunDir
from wav2vec2_pipeline.scoring import (
    NORMALIZERS,
    UPPER,
    ErrorCounts,
    char_errors,
    corpus_cer,
    corpus_wer,
    text_normalizer,
    word_errors,
)

REFERENCE_ACCURACY = 0.970
"""The Ascend310P3 guide's accuracy (1 - CER over the utterances it did not skip)."""
SCORED, TRANSCRIBED = "scored", "transcribed"


@dataclass(frozen=True, kw_only=True)
class PostprocessOptions:
    batch_size: int = option(help="rows per bin, as preprocess wrote them")
    pytorch_model_dir: Path | None = option(None, "vocab and config from here (default: the vocabulary recorded at "
                                                  "export)", type=Path)
    normalizer: str = option(UPPER, "applied to reference and hypothesis before scoring: upper (case and spaces "
                                    "folded, for LibriSpeech), english (Whisper's English normaliser), none",
                             choices=NORMALIZERS)  # fmt: skip
    decoding: DecodingOptions = group(DecodingOptions)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise PipelineError(f"--batch_size must be at least 1, got {self.batch_size}")
        if self.normalizer not in NORMALIZERS:
            raise PipelineError(f"--normalizer {self.normalizer!r}: choose one of {', '.join(NORMALIZERS)}")


@dataclass(frozen=True)
class Rates:
    wer: float | None
    cer: float | None


@dataclass(frozen=True)
class UtteranceResult:
    utt_id: str
    audio: str
    status: str
    """`scored` (a hypothesis, empty for audio too short for one frame, and a reference), `transcribed` (a
    hypothesis, no reference) or `skipped` (no hypothesis)."""
    outcome: str
    """What preprocess did with it: whole, skipped, cut, chunked or empty."""
    long_audio: str | None
    """skipped, cut or chunked for an utterance longer than the window, else None."""
    seconds: float
    seconds_lost: float
    reference: str | None
    hypothesis: str | None = None
    words: list[Word] | None = None
    """Each word of the hypothesis with its times in seconds from the start of the utterance."""
    word_errors: ErrorCounts | None = None
    char_errors: ErrorCounts | None = None


@dataclass(frozen=True)
class DecodingFigures:
    """Which decoder made the text, from what files, and how fast beside the model (compile.py's figure)."""

    decoder: str
    options: list[str] | None
    lm_sha256: str | None
    lexicon_sha256: str | None
    seconds: float
    """Inside the decoder, reading the logits aside (wall time of the parallel workers' calls)."""
    workers: int
    audio_s_per_s: float | None
    model_audio_s_per_s: float | None
    """The model's audio seconds per wall second in the compile.py run of these logits."""


@dataclass(frozen=True)
class Summary:
    batch_size: int
    max_samples: int
    long_audio: str
    normalizer: str
    backend: str
    model_sha256: str
    logits_run_key: str
    utterances_scored: int
    utterances_without_reference: int
    """Transcribed, not scored: the input gave no transcript."""
    utterances_skipped: int
    utterances_cut: int
    utterances_chunked: int
    utterances_empty: int
    seconds_scored: float
    seconds_skipped: float
    seconds_lost: float
    wer: float | None
    cer: float | None
    accuracy: float | None
    reference_accuracy: float
    all_utterances: Rates
    long_utterances: Rates
    decoding: DecodingFigures


@dataclass(frozen=True)
class Report:
    FORMAT: ClassVar[str] = "wav2vec2-pipeline/report/3"
    PRODUCED_BY: ClassVar[str] = "wav2vec2_postprocess.py"

    summary: Summary
    utterances: list[UtteranceResult]


def check_logits(
    output_dir: Path,
    manifest: LogitsManifest,
    batch_map: BatchMap,
    vocab: Sequence[str],
    geometry: Geometry,
    vocab_given: bool,
) -> None:
    """Refuse the logits unless they were computed from exactly the map's input bins, for this vocabulary
    and frame rate."""
    redo = "re-run compile.py on the input bins of this preprocess run"
    if manifest.input_run_key != batch_map.run_key or manifest.map_digest is None:
        raise PipelineError(
            f"the logits in {output_dir} were computed from other input bins than the ones the batch map for "
            f"batch size {batch_map.batch_size} describes (preprocess was re-run since, or another dataset or "
            f"settings were used): {redo}"
        )
    if manifest.map_digest != batch_map.layout_digest:
        raise PipelineError(
            f"the batch map for batch size {batch_map.batch_size} in its --data_path is not the one the input bins "
            f"of the logits in {output_dir} were made with (edited, or written by another preprocess run): re-run "
            "wav2vec2_preprocess.py"
        )
    by_name = {record.name: record for record in manifest.bins}
    if set(by_name) != {b.name for b in batch_map.bins}:
        raise PipelineError(f"{output_dir} holds other bins than the batch map lists: {redo}")
    if vocab_given and manifest.vocab is not None and list(vocab) != manifest.vocab:
        raise PipelineError(
            f"the vocabulary given (--pytorch_model_dir) is not the one the logits in {output_dir} were made with "
            "(recorded at export): pass the model dir traced.pth was exported from, or leave it out"
        )
    for map_bin in batch_map.bins:
        record = by_name[map_bin.name]
        if record.input_sha256 != map_bin.sha256:
            raise PipelineError(
                f"{output_dir / map_bin.name} was computed from another input bin than the batch map's "
                f"{map_bin.name} (renamed, or copied from another run): {redo}"
            )
        key = logits_key(manifest.model_sha256, map_bin.sha256, [map_bin.height, map_bin.samples],
                         manifest.backend, manifest.backend_options)  # fmt: skip
        if record.key != key:
            raise PipelineError(
                f"{output_dir / map_bin.name} was not computed by the model and backend its manifest names from the "
                f"map's {map_bin.name} (bins of two runs in one dir?): {redo}"
            )
        expected = [map_bin.height, geometry.num_frames(map_bin.samples), len(vocab)]
        if record.shape != expected:
            raise PipelineError(
                f"{output_dir / map_bin.name}: compile.py wrote it as {shape_text(record.shape)}; the batch map, "
                f"model and vocabulary need {shape_text(expected)}. Pass the --pytorch_model_dir of the model that "
                "made the logits, or re-run compile.py."
            )
        if any(row.keep[1] > expected[1] for row in map_bin.rows):
            raise PipelineError(f"the batch map keeps frames past the end of {map_bin.name}; re-run preprocess")


def utterance_logits(
    output_dir: Path, batch_map: BatchMap, manifest: LogitsManifest
) -> Iterator[tuple[str, np.ndarray]]:
    """(utterance, its stitched logits) for every utterance with rows, bin by bin, each bin checked against
    its record, one utterance held at a time."""
    by_name = {record.name: record for record in manifest.bins}

    def rows() -> Iterator[tuple[str, tuple[int, int], np.ndarray]]:
        for map_bin in tqdm(batch_map.bins, desc="decoding", disable=None):
            record = by_name[map_bin.name]
            data = read_bytes(output_dir / map_bin.name, record.shape, "Re-run compile.py.")
            if bytes_sha256(data) != record.sha256:
                raise PipelineError(
                    f"{output_dir / map_bin.name} does not hold what compile.py wrote there (changed, swapped or "
                    "renamed since): re-run compile.py"
                )
            logits = as_array(data, record.shape)
            for index, row in enumerate(map_bin.rows):
                yield row.utt_id, row.keep, logits[index]

    return stitch(rows())


def error_rates(references: list[str], hypotheses: list[str]) -> Rates:
    if not references:
        return Rates(None, None)
    return Rates(corpus_wer(references, hypotheses), corpus_cer(references, hypotheses))


def score(
    batch_map: BatchMap,
    manifest: LogitsManifest,
    references: dict[str, str],
    decoded: dict[str, list[Word]],
    normalizer: str,
    decoding: DecodingFigures,
) -> Report:
    """Per-utterance results, every utterance exactly once; rates over the scored (the reference's figure),
    over all with a reference (a skipped one counts as all deletions) and over the long ones. Both sides are
    normalised for scoring; the report keeps them as they were."""
    normalize = text_normalizer(normalizer)
    texts = {u: " ".join(w.word for w in words) for u, words in decoded.items()}
    transcribed = {u for u, e in batch_map.utterances.items() if e.outcome != SKIPPED}
    refs = {u: normalize(text) for u, text in references.items()}
    hyps = {u: normalize(texts.get(u, "")) for u in transcribed}
    results = []
    for utt_id, entry in sorted(batch_map.utterances.items()):
        scored = utt_id in transcribed and utt_id in refs
        status = SCORED if scored else TRANSCRIBED if utt_id in transcribed else SKIPPED
        results.append(
            UtteranceResult(
                utt_id=utt_id, audio=entry.audio, status=status, outcome=entry.outcome,
                long_audio=entry.outcome if entry.num_samples > batch_map.max_samples else None,
                seconds=batch_map.seconds([utt_id]), seconds_lost=batch_map.seconds_lost(utt_id),
                reference=references.get(utt_id), hypothesis=texts.get(utt_id, "") if utt_id in transcribed else None,
                words=decoded.get(utt_id, []) if utt_id in transcribed else None,
                word_errors=word_errors(refs[utt_id], hyps[utt_id]) if scored else None,
                char_errors=char_errors(refs[utt_id], hyps[utt_id]) if scored else None,
            )
        )  # fmt: skip

    def rates(utt_ids: list[str]) -> Rates:
        with_ref = [u for u in utt_ids if u in refs]
        return error_rates([refs[u] for u in with_ref], [hyps.get(u, "") for u in with_ref])

    scored_ids = sorted(u for u in transcribed if u in refs)
    over_scored = rates(scored_ids)
    skipped = batch_map.with_outcome(SKIPPED)
    summary = Summary(
        batch_size=batch_map.batch_size, max_samples=batch_map.max_samples, long_audio=batch_map.long_audio,
        normalizer=normalizer, backend=manifest.backend, model_sha256=manifest.model_sha256,
        logits_run_key=manifest.run_key, utterances_scored=len(scored_ids),
        utterances_without_reference=len(transcribed - set(refs)),
        utterances_skipped=len(skipped), utterances_cut=len(batch_map.with_outcome(CUT_OFF)),
        utterances_chunked=len(batch_map.with_outcome(CHUNKED)), utterances_empty=len(batch_map.with_outcome(EMPTY)),
        seconds_scored=batch_map.seconds(scored_ids), seconds_skipped=batch_map.seconds(skipped),
        seconds_lost=sum(batch_map.seconds_lost(u) for u in batch_map.utterances),
        wer=over_scored.wer, cer=over_scored.cer, accuracy=None if over_scored.cer is None else 1.0 - over_scored.cer,
        reference_accuracy=REFERENCE_ACCURACY, all_utterances=rates(sorted(refs)),
        long_utterances=rates(batch_map.long_ids), decoding=decoding,
    )  # fmt: skip
    return Report(summary, results)


def postprocess(output_dir: Path, data_path: Path, options: PostprocessOptions) -> Report:
    batch_map = read_map(data_path, options.batch_size)
    references = read_ground_truth(data_path, batch_map)
    manifest = RunDir(output_dir, LogitsManifest).require_manifest()
    geometry = load_geometry(options.pytorch_model_dir)
    given = options.pytorch_model_dir is not None
    if not given and manifest.vocab is None:
        raise PipelineError(
            f"the logits in {output_dir} carry no vocabulary (traced.pth had no export record of "
            "wav2vec2_pth2ts.py, or was replaced since): pass --pytorch_model_dir of the model it was exported from"
        )
    vocab = load_vocab(options.pytorch_model_dir, geometry) if given else tuple(manifest.vocab)
    check_logits(output_dir, manifest, batch_map, vocab, geometry, vocab_given=given)
    decoding = options.decoding
    decoder = make_decoder(decoding, vocab)  # what it reads is checked here, before any logits are
    seconds_per_frame = geometry.samples_per_frame / batch_map.sample_rate
    timing = Decoded()
    decoded = {
        utt_id: [Word(s.word, s.start_frame * seconds_per_frame, s.end_frame * seconds_per_frame) for s in spans]
        for utt_id, spans in decode_all(decoder, utterance_logits(output_dir, batch_map, manifest),
                                        decoding.beam.workers, timing)
    }  # fmt: skip
    audio_s = sum(batch_map.seconds([u]) - batch_map.seconds_lost(u) for u in decoded)
    digests = {name: file_sha256(path) if path is not None else None for name, path in decoding.files().items()}
    figures = DecodingFigures(
        decoder=decoding.decoder, options=decoding.described(), lm_sha256=digests.get("lm"),
        lexicon_sha256=digests.get("lexicon"), seconds=timing.seconds, workers=timing.workers,
        audio_s_per_s=audio_s / timing.seconds if timing.seconds > 0 else None,
        model_audio_s_per_s=manifest.stage.audio_s_per_s,
    )  # fmt: skip
    return score(batch_map, manifest, references, decoded, options.normalizer, figures)


def transcripts(report: Report) -> list[Transcript]:
    """What was transcribed, with word times, for transcripts.jsonl, --srt and --ctm."""
    return [
        Transcript(u.utt_id, u.audio, u.hypothesis, u.words or [])
        for u in report.utterances
        if u.hypothesis is not None
    ]


def write_report(path: Path, report: Report) -> None:
    records.save(path, report)
