"""Greedy CTC decoding of the logits bins, and a WER / accuracy (1 - CER) report."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, run_cli


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="dir of logits bins from compile.py")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir of the batch map and ground truth")
    parser.add_argument("--pytorch_model_dir", type=Path,
                        help="take vocab and config from here (default: the vocabulary recorded at export, else "
                        "base-960h's)")  # fmt: skip
    parser.add_argument("--report", type=Path, help="JSON report path (default: DATA_PATH/report_bsN.json)")
    args = parser.parse_args()

    from wav2vec2_pipeline.batches import GROUND_TRUTH_FILE, map_path
    from wav2vec2_pipeline.fileio import check_output_file
    from wav2vec2_pipeline.postprocess import PostprocessOptions, postprocess, write_report

    options = PostprocessOptions(batch_size=args.batch_size, model_dir=args.pytorch_model_dir)
    report_path = args.report or args.data_path / f"report_bs{args.batch_size}.json"
    check_output_file(report_path, "--report", keep=(map_path(args.data_path, args.batch_size),
                                                     args.data_path / GROUND_TRUTH_FILE))  # fmt: skip
    report = postprocess(args.input, args.data_path, options)
    write_report(report_path, report)
    summary = report.summary
    print(
        f"long audio: {summary.long_audio}; scored {summary.utterances_scored} utterances "
        f"({summary.seconds_scored:.1f} s), skipped {summary.utterances_skipped}, cut {summary.utterances_cut}, "
        f"chunked {summary.utterances_chunked}, empty {summary.utterances_empty}; "
        f"{summary.seconds_lost:.1f} s of speech lost"
    )
    if summary.wer is None:
        print("nothing to score: every utterance was skipped")
    else:
        print(f"WER {summary.wer:.4f} over the scored utterances (case and spacing ignored: {summary.normalizer})")
        print(
            f"accuracy (1 - CER) {summary.accuracy:.4f} over the scored utterances  "
            f"(reference Ascend310P3: {summary.reference_accuracy:.3f})"
        )
    for label, rates in (("all utterances", summary.all_utterances), ("long utterances", summary.long_utterances)):
        if rates.wer is not None:
            print(f"over {label}: WER {rates.wer:.4f}, CER {rates.cer:.4f}")
    print(f"report: {report_path}")


if __name__ == "__main__":
    run_cli(main)
