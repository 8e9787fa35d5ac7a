"""Padding waste and lost speech of each --layout and --long_audio over real LibriSpeech lengths.

Reads only durations (no audio): `python3 -m benchmarks.padding_waste` prints a markdown table.
"""

import argparse
from pathlib import Path

from wav2vec2_pipeline.model import MAX_SAMPLES, SAMPLE_RATE, num_frames
from wav2vec2_pipeline.planning import (
    CHUNK,
    CUT,
    DEFAULT_BUCKET_SAMPLES,
    SKIP,
    Layout,
    plan_bins,
    plan_cost,
)

DURATIONS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech-meta" / "test-clean.all.durations.tsv"
)


def read_lengths(path: Path) -> dict[str, int]:
    """`<utt_id>\\t<seconds>` lines -> samples at 16 kHz."""
    lengths = {}
    for line in path.read_text().splitlines():
        utt_id, seconds = line.split("\t")
        lengths[utt_id] = round(float(seconds) * SAMPLE_RATE)
    return lengths


def table(lengths: dict[str, int], batch_size: int) -> str:
    stride = num_frames(MAX_SAMPLES) // 6
    layouts = [
        (f"{SKIP} (reference)", Layout((MAX_SAMPLES,), SKIP, stride)),
        (CUT, Layout((MAX_SAMPLES,), CUT, stride)),
        (CHUNK, Layout((MAX_SAMPLES,), CHUNK, stride)),
        (f"bucket ({'/'.join(str(b // SAMPLE_RATE) for b in DEFAULT_BUCKET_SAMPLES)} s)",
         Layout(DEFAULT_BUCKET_SAMPLES, CHUNK, stride)),
        ("whole (the default)", Layout.whole()),
    ]  # fmt: skip
    lines = [
        "| layout | utterances scored | rows | padding | overlap | speech lost |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, layout in layouts:
        plan = plan_bins(lengths, batch_size, layout)
        cost = plan_cost(plan, lengths)
        rows = sum(len(b.rows) for b in plan.bins)
        lines.append(
            f"| {label} | {len(lengths) - len(plan.skipped)} of {len(lengths)} | {rows} | "
            f"{cost.padding_share:.1%} | {cost.overlap_share:.1%} | {cost.lost_share:.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--durations", type=Path, default=DURATIONS)
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args()
    lengths = read_lengths(args.durations)
    print(f"{args.durations.name}: {len(lengths)} utterances, {sum(lengths.values()) / SAMPLE_RATE / 3600:.2f} h; "
          f"batch size {args.batch_size}; padding and overlap as shares of the samples computed\n")  # fmt: skip
    print(table(lengths, args.batch_size))


if __name__ == "__main__":
    main()
