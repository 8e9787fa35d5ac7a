"""Stage 4: decode the logits bins through the batch map and score them against the ground truth."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm
from transformers import Wav2Vec2Config

from wav2vec2_pipeline.batches import BatchMap, read_ground_truth, read_map
from wav2vec2_pipeline.bins import read_bin, read_manifest
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json
from wav2vec2_pipeline.model import SAMPLE_RATE, num_frames
from wav2vec2_pipeline.scoring import char_errors, corpus_cer, corpus_wer, word_errors

REFERENCE_ACCURACY = 0.970
"""The Ascend310P3 guide's accuracy (1 - CER over the utterances it did not skip)."""


@dataclass(frozen=True)
class Report:
    summary: dict[str, object]
    utterances: list[dict[str, object]]

    def as_dict(self) -> dict[str, object]:
        return {"summary": self.summary, "utterances": self.utterances}


def decode_bins(output_dir: Path, batch_map: BatchMap, frames: int, vocab: Sequence[str]) -> dict[str, str]:
    """Hypothesis text of every utterance in the map's bins; pad rows are never decoded."""
    shape = (batch_map.batch_size, frames, len(vocab))
    manifest = read_manifest(output_dir)
    if manifest is not None and tuple(manifest["shape"]) != shape:
        raise PipelineError(
            f"logits in {output_dir} have shape {' x '.join(map(str, manifest['shape']))} per bin; the map and "
            f"vocabulary need {' x '.join(map(str, shape))}. Re-run compile.py on this batch size's input bins."
        )
    hint = (
        f"Expected logits for --batch_size {batch_map.batch_size} and --max_samples {batch_map.max_samples}; "
        "re-run compile.py on the bins of this batch size."
    )
    hypotheses: dict[str, str] = {}
    for name, utt_ids in tqdm(batch_map.bins.items(), desc="decoding", disable=None):
        logits = read_bin(output_dir / name, shape, hint)
        for row, utt_id in enumerate(utt_ids):
            hypotheses[utt_id] = greedy_decode(logits[row], vocab)
    return hypotheses


def score(batch_map: BatchMap, references: dict[str, str], hypotheses: dict[str, str]) -> Report:
    """Per-utterance errors for the scored, and the skipped listed with their length, each exactly once."""
    scored = batch_map.scored
    utterances: list[dict[str, object]] = []
    for utt_id in sorted(references):
        entry: dict[str, object] = {
            "utt_id": utt_id,
            "seconds": batch_map.num_samples[utt_id] / SAMPLE_RATE,
            "reference": references[utt_id],
        }
        if utt_id in hypotheses:
            hypothesis = hypotheses[utt_id]
            entry |= {
                "status": "scored",
                "hypothesis": hypothesis,
                "word_errors": word_errors(references[utt_id], hypothesis).as_dict(),
                "char_errors": char_errors(references[utt_id], hypothesis).as_dict(),
            }
        else:
            entry |= {"status": "skipped", "reason": f"longer than max_samples {batch_map.max_samples}"}
        utterances.append(entry)
    refs = [references[utt_id] for utt_id in scored]
    hyps = [hypotheses[utt_id] for utt_id in scored]
    cer = corpus_cer(refs, hyps) if scored else None
    summary: dict[str, object] = {
        "batch_size": batch_map.batch_size,
        "max_samples": batch_map.max_samples,
        "utterances_scored": len(scored),
        "utterances_skipped": len(batch_map.skipped),
        "seconds_scored": batch_map.seconds(scored),
        "seconds_skipped": batch_map.seconds(batch_map.skipped),
        "wer": corpus_wer(refs, hyps) if scored else None,
        "cer": cer,
        "accuracy": None if cer is None else 1.0 - cer,
        "reference_accuracy": REFERENCE_ACCURACY,
    }
    return Report(summary, utterances)


def postprocess(
    output_dir: Path, batch_size: int, data_path: Path, config: Wav2Vec2Config, vocab: Sequence[str]
) -> Report:
    batch_map = read_map(data_path, batch_size)
    references = read_ground_truth(data_path, batch_map.scored + batch_map.skipped)
    hypotheses = decode_bins(output_dir, batch_map, num_frames(batch_map.max_samples, config), vocab)
    return score(batch_map, references, hypotheses)


def write_report(path: Path, report: Report) -> None:
    atomic_write_json(path, report.as_dict())
