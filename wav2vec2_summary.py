"""Collect a sweep's reports and compile.py figures into results/summary.md and results/throughput.png."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, run_cli


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--output_root", type=Path, required=True, help="dir holding <backend>/bs<N>/ logits dirs")
    parser.add_argument("--dataset", required=True, help="dataset name for the table, e.g. LibriSpeech test-clean")
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--title", default="wav2vec2-base-960h batch-size sweep")
    args = parser.parse_args()

    from wav2vec2_pipeline.summary import collect_rows, markdown_table, write_summary

    rows = collect_rows(args.output_root, args.dataset)
    table_path, plot_path = write_summary(rows, args.results, args.title)
    print(markdown_table(rows))
    print(f"wrote {table_path} and {plot_path}")


if __name__ == "__main__":
    run_cli(main)
