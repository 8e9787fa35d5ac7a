"""Stage 4: stitch each utterance's logits from its rows, decode, and score against the ground truth."""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm
from transformers import Wav2Vec2Config

from wav2vec2_pipeline.batches import BatchMap, read_ground_truth, read_map
from wav2vec2_pipeline.bins import read_bin, read_manifest, shape_text
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_json
from wav2vec2_pipeline.model import num_frames
from wav2vec2_pipeline.planning import stitch
from wav2vec2_pipeline.scoring import char_errors, corpus_cer, corpus_wer, word_errors

REFERENCE_ACCURACY = 0.970
"""The Ascend310P3 guide's accuracy (1 - CER over the utterances it did not skip)."""


@dataclass(frozen=True)
class Report:
    summary: dict[str, object]
    utterances: list[dict[str, object]]

    def as_dict(self) -> dict[str, object]:
        return {"summary": self.summary, "utterances": self.utterances}


def stitch_logits(
    output_dir: Path, batch_map: BatchMap, config: Wav2Vec2Config, vocab_size: int
) -> dict[str, np.ndarray]:
    """Each utterance's logits (frames x vocab): the kept frames of its rows, in row order.
    Pad rows, chunk context and frames over padding are dropped here."""
    manifest = read_manifest(output_dir)
    if manifest is not None and manifest.get("preprocess_id") not in (None, batch_map.preprocess_id):
        raise PipelineError(
            f"the logits in {output_dir} were computed from other input bins than the ones the batch map for "
            f"batch size {batch_map.batch_size} describes (preprocess was re-run since, or another dataset or model "
            "was used): re-run compile.py on the current input bins"
        )

    def rows() -> Iterator[tuple[str, tuple[int, int], np.ndarray]]:
        for name, utt_ids in tqdm(batch_map.bins.items(), desc="reading logits", disable=None):
            logits = read_bin(output_dir / name, *expected_shape(name))
            for row, (utt_id, keep) in enumerate(zip(utt_ids, batch_map.keep_frames[name], strict=True)):
                yield utt_id, (keep[0], keep[1]), logits[row]

    def expected_shape(name: str) -> tuple[tuple[int, int, int], str]:
        """The bin's shape from the map (checked against compile.py's manifest), and what to do if it differs."""
        shape = (batch_map.batch_size, num_frames(batch_map.bin_samples[name], config), vocab_size)
        if manifest is not None and tuple(manifest["bins"].get(name, ())) != shape:
            raise PipelineError(
                f"{output_dir / name}: compile.py wrote it as {shape_text(tuple(manifest['bins'].get(name, ())))}; "
                f"the batch map and vocabulary need {shape_text(shape)}. Re-run compile.py on this batch size's bins."
            )
        hint = (
            f"Expected logits for --batch_size {batch_map.batch_size} and rows of {batch_map.bin_samples[name]} "
            "samples; re-run compile.py on the bins of this batch size."
        )
        return shape, hint

    return stitch(rows())


def error_rates(references: list[str], hypotheses: list[str]) -> dict[str, float | None]:
    if not references:
        return {"wer": None, "cer": None}
    return {"wer": corpus_wer(references, hypotheses), "cer": corpus_cer(references, hypotheses)}


def score(batch_map: BatchMap, references: dict[str, str], hypotheses: dict[str, str]) -> Report:
    """Per-utterance errors, every utterance exactly once; rates over the scored (the reference's
    figure), over all (a skipped utterance counts as all deletions) and over the long ones."""
    long_ids = set(batch_map.skipped) | set(batch_map.cut) | set(batch_map.chunked)
    treatment = {"skipped": set(batch_map.skipped), "cut": set(batch_map.cut), "chunked": set(batch_map.chunked)}
    utterances: list[dict[str, object]] = []
    for utt_id in sorted(references):
        hypothesis = hypotheses.get(utt_id, "")
        entry: dict[str, object] = {
            "utt_id": utt_id,
            "status": "scored" if utt_id in hypotheses else "skipped",
            "long_audio": next((name for name, ids in treatment.items() if utt_id in ids), None),
            "seconds": batch_map.seconds([utt_id]),
            "seconds_lost": batch_map.seconds_lost(utt_id),
            "reference": references[utt_id],
        }
        if utt_id in hypotheses:
            entry |= {
                "hypothesis": hypothesis,
                "word_errors": word_errors(references[utt_id], hypothesis).as_dict(),
                "char_errors": char_errors(references[utt_id], hypothesis).as_dict(),
            }
        utterances.append(entry)

    def rates(utt_ids: list[str]) -> dict[str, float | None]:
        return error_rates([references[u] for u in utt_ids], [hypotheses.get(u, "") for u in utt_ids])

    scored = batch_map.scored
    over_scored = rates(scored)
    summary: dict[str, object] = {
        "batch_size": batch_map.batch_size,
        "max_samples": batch_map.max_samples,
        "long_audio": batch_map.long_audio,
        "utterances_scored": len(scored),
        "utterances_skipped": len(batch_map.skipped),
        "utterances_cut": len(batch_map.cut),
        "utterances_chunked": len(batch_map.chunked),
        "seconds_scored": batch_map.seconds(scored),
        "seconds_skipped": batch_map.seconds(batch_map.skipped),
        "seconds_lost": sum(batch_map.seconds_lost(u) for u in references),
        **over_scored,
        "accuracy": None if over_scored["cer"] is None else 1.0 - over_scored["cer"],
        "reference_accuracy": REFERENCE_ACCURACY,
        "all_utterances": rates(sorted(references)),
        "long_utterances": rates(sorted(long_ids)),
    }
    return Report(summary, utterances)


def postprocess(
    output_dir: Path, batch_size: int, data_path: Path, config: Wav2Vec2Config, vocab: Sequence[str]
) -> Report:
    batch_map = read_map(data_path, batch_size)
    references = read_ground_truth(data_path, batch_map.scored + batch_map.skipped)
    logits = stitch_logits(output_dir, batch_map, config, len(vocab))
    hypotheses = {utt_id: greedy_decode(utterance_logits, vocab) for utt_id, utterance_logits in logits.items()}
    return score(batch_map, references, hypotheses)


def write_report(path: Path, report: Report) -> None:
    atomic_write_json(path, report.as_dict())
