"""The sweep's results: one row per backend and batch size, as a markdown table and a throughput plot."""

import io
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from wav2vec2_pipeline import records
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.fileio import atomic_write_bytes, atomic_write_text
from wav2vec2_pipeline.manifests import LogitsManifest
from wav2vec2_pipeline.postprocess import Report
from wav2vec2_pipeline.rundir import RunDir

REFERENCE_SAMPLES_PER_S = {1: 86.58, 4: 89.48, 8: 92.25, 16: 90.25, 32: 85.41, 64: 84.81}
"""The Ascend guide's Ascend310P3 throughput (with its TorchScript optimisation), by batch size."""


@dataclass(frozen=True)
class SweepRow:
    backend: str
    batch_size: int
    dataset: str
    accuracy: float | None
    wer: float | None
    samples_per_s: float
    audio_s_per_s: float | None
    peak_rss_mib: float
    long_audio: str
    utterances_scored: int
    utterances: int


def collect_rows(output_root: Path, dataset: str) -> list[SweepRow]:
    """Rows from `output_root/<backend>/bs<N>/manifest.json` and `output_root/<backend>/report_bs<N>.json`."""
    rows = []
    for manifest_dir in sorted(output_root.glob("*/bs*")):
        manifest = RunDir(manifest_dir, LogitsManifest).require_manifest()
        report_path = manifest_dir.parent / f"report_{manifest_dir.name}.json"
        if manifest.throughput is None or not report_path.is_file():
            raise PipelineError(f"{manifest_dir}: compile.py or postprocess did not finish there; re-run the sweep")
        summary = records.load(Report, report_path).summary
        if summary.logits_run_key != manifest.run_key:
            raise PipelineError(f"{report_path} scores other logits than {manifest_dir} holds; re-run the sweep")
        rows.append(
            SweepRow(
                backend=manifest.backend,
                batch_size=manifest.batch_size,
                dataset=dataset,
                accuracy=summary.accuracy,
                wer=summary.wer,
                samples_per_s=manifest.throughput.samples_per_s,
                audio_s_per_s=manifest.stage.audio_s_per_s,
                peak_rss_mib=manifest.stage.peak_rss_mib,
                long_audio=summary.long_audio,
                utterances_scored=summary.utterances_scored,
                utterances=summary.utterances_scored + summary.utterances_without_reference
                + summary.utterances_skipped,
            )
        )
    if not rows:
        raise PipelineError(f"no finished runs under {output_root}")
    return sorted(rows, key=lambda row: (row.backend, row.batch_size))


def _number(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[SweepRow]) -> str:
    """The reference table's columns (backend, batch size, dataset, accuracy, samples/s), then ours."""
    lines = [
        "| backend | batch size | dataset | accuracy (1 - CER) | samples/s | WER | audio s/s | peak RSS MiB "
        "| long audio | utterances scored |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.backend} | {row.batch_size} | {row.dataset} | {_number(row.accuracy, 3)} | "
            f"{row.samples_per_s:.2f} | {_number(row.wer, 4)} | {_number(row.audio_s_per_s, 2)} | "
            f"{row.peak_rss_mib:.0f} | {row.long_audio} | {row.utterances_scored} of {row.utterances} |"
        )
    return "\n".join(lines) + "\n"


def throughput_png(rows: list[SweepRow], title: str) -> bytes:
    """samples/s against batch size, one line per backend, and the Ascend310P3 reference line."""
    figure = Figure(figsize=(7, 4.5), dpi=120)  # no pyplot: no display or global state needed
    axes = figure.add_subplot()
    for backend in sorted({row.backend for row in rows}):
        mine = sorted((row.batch_size, row.samples_per_s) for row in rows if row.backend == backend)
        axes.plot(*zip(*mine, strict=True), marker="o", label=f"{backend} (this run)")
        for batch_size, value in mine:
            axes.annotate(f"{value:.3g}", (batch_size, value), textcoords="offset points", xytext=(0, 6), ha="center")
    reference = sorted(REFERENCE_SAMPLES_PER_S.items())
    axes.plot(
        *zip(*reference, strict=True), linestyle="--", color="grey", marker="x", label="Ascend310P3 (reference guide)"
    )
    axes.set_xscale("log", base=2)
    axes.set_xticks(sorted({row.batch_size for row in rows} | set(REFERENCE_SAMPLES_PER_S)))
    axes.get_xaxis().set_major_formatter(ScalarFormatter())
    axes.set_xlabel("batch size")
    axes.set_ylabel("model throughput (samples/s, 100000-sample rows)")
    values = [row.samples_per_s for row in rows] + list(REFERENCE_SAMPLES_PER_S.values())
    if max(values) > 10 * min(values):  # e.g. a CPU beside the NPU: a linear axis would flatten the CPU line
        axes.set_yscale("log")
    else:
        axes.set_ylim(bottom=0)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend()
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_summary(rows: list[SweepRow], results: Path, title: str) -> tuple[Path, Path]:
    table_path, plot_path = results / "summary.md", results / "throughput.png"
    atomic_write_text(table_path, f"# {title}\n\n{markdown_table(rows)}")
    atomic_write_bytes(plot_path, throughput_png(rows, title))
    return table_path, plot_path
