"""Greedy CTC decoding of the logits bins, and a WER / accuracy (1 - CER) report."""

import argparse
from pathlib import Path

from wav2vec2_pipeline.errors import run_cli
from wav2vec2_pipeline.model import load_config, load_vocab
from wav2vec2_pipeline.postprocess import postprocess, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="dir of logits bins from compile.py")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir of the batch map and ground truth")
    parser.add_argument("--pytorch_model_dir", type=Path, help="take vocab and config from here (default: base-960h's)")
    parser.add_argument("--report", type=Path, help="JSON report path (default: DATA_PATH/report_bsN.json)")
    args = parser.parse_args()

    report = postprocess(
        args.input,
        args.batch_size,
        args.data_path,
        load_config(args.pytorch_model_dir),
        load_vocab(args.pytorch_model_dir),
    )
    report_path = args.report or args.data_path / f"report_bs{args.batch_size}.json"
    write_report(report_path, report)
    summary = report.summary
    print(
        f"long audio: {summary['long_audio']}; scored {summary['utterances_scored']} utterances "
        f"({summary['seconds_scored']:.1f} s), skipped {summary['utterances_skipped']}, "
        f"cut {summary['utterances_cut']}, chunked {summary['utterances_chunked']}; "
        f"{summary['seconds_lost']:.1f} s of speech lost"
    )
    if summary["wer"] is None:
        print("nothing to score: every utterance was skipped")
    else:
        print(f"WER {summary['wer']:.4f} over the scored utterances")
        print(
            f"accuracy (1 - CER) {summary['accuracy']:.4f} over the scored utterances  "
            f"(reference Ascend310P3: {summary['reference_accuracy']:.3f})"
        )
    for label in ("all_utterances", "long_utterances"):
        rates = summary[label]
        if rates["wer"] is not None:
            print(f"over {label.replace('_', ' ')}: WER {rates['wer']:.4f}, CER {rates['cer']:.4f}")
    print(f"report: {report_path}")


if __name__ == "__main__":
    run_cli(main)
