"""Greedy CTC decoding of the logits bins: transcripts with word times, and a WER / accuracy (1 - CER) report."""

from pathlib import Path

from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, run_cli


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="dir of logits bins from compile.py")
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir of the batch map and ground truth")
    parser.add_argument("--pytorch_model_dir", type=Path,
                        help="vocab and config from here (default: the vocabulary recorded at export)")  # fmt: skip
    parser.add_argument("--report", type=Path, help="JSON report path (default: DATA_PATH/report_bsN.json)")
    parser.add_argument("--transcripts", type=Path,
                        help="JSON lines, one per utterance, with word times (default: transcripts_bsN.jsonl beside "
                        "the report)")  # fmt: skip
    parser.add_argument("--srt", type=Path, help="also write one SubRip subtitle file per utterance into this dir")
    parser.add_argument("--ctm", type=Path, help="also write every word's time as NIST CTM to this file")
    parser.add_argument("--normalizer", choices=("upper", "english", "none"), default="upper",
                        help="applied to reference and hypothesis before scoring: upper (case and spaces folded, "
                        "for LibriSpeech), english (Whisper's English normaliser), none")  # fmt: skip
    args = parser.parse_args()

    from wav2vec2_pipeline.batches import GROUND_TRUTH_FILE, map_path
    from wav2vec2_pipeline.fileio import atomic_write_text, check_output_dir, check_output_file, make_dir
    from wav2vec2_pipeline.outputs import ctm, is_ctm, is_transcripts, jsonl, write_srt_files
    from wav2vec2_pipeline.postprocess import PostprocessOptions, Report, postprocess, transcripts, write_report
    from wav2vec2_pipeline.records import is_saved

    options = PostprocessOptions(batch_size=args.batch_size, model_dir=args.pytorch_model_dir,
                                 normalizer=args.normalizer)  # fmt: skip
    report_path = args.report or args.data_path / f"report_bs{args.batch_size}.json"
    transcripts_path = args.transcripts or report_path.with_name(f"transcripts_bs{args.batch_size}.jsonl")
    inputs = (map_path(args.data_path, args.batch_size), args.data_path / GROUND_TRUTH_FILE)
    outputs = (("--report", report_path, lambda p: is_saved(Report, p)),
               ("--transcripts", transcripts_path, is_transcripts), ("--ctm", args.ctm, is_ctm))  # fmt: skip
    named = [path.resolve() for _, path, _ in outputs if path is not None]
    if len(set(named)) != len(named):
        raise PipelineError("--report, --transcripts and --ctm must name different files")
    for flag, path, ours in outputs:
        if path is not None:
            check_output_file(path, flag, ours, keep=inputs)
    if args.srt is not None:
        check_output_dir(args.srt, "--srt")
        make_dir(args.srt)  # before any work: a dir that cannot be made stops the stage with nothing written

    report = postprocess(args.input, args.data_path, options)
    write_report(report_path, report)
    texts = transcripts(report)
    atomic_write_text(transcripts_path, jsonl(texts))
    if args.ctm is not None:
        atomic_write_text(args.ctm, ctm(texts))
    if args.srt is not None:
        write_srt_files(args.srt, texts)
    summary = report.summary
    print(
        f"long audio: {summary.long_audio}; scored {summary.utterances_scored} utterances "
        f"({summary.seconds_scored:.1f} s), transcribed without a reference {summary.utterances_without_reference}, "
        f"skipped {summary.utterances_skipped}, cut {summary.utterances_cut}, chunked {summary.utterances_chunked}, "
        f"empty {summary.utterances_empty}; {summary.seconds_lost:.1f} s of speech lost"
    )
    if summary.wer is None:
        print("no WER: no utterance has both a transcript and a reference" if texts else
              "nothing to score: every utterance was skipped")  # fmt: skip
    else:
        print(f"WER {summary.wer:.4f} over the scored utterances (normalizer: {summary.normalizer})")
        print(
            f"accuracy (1 - CER) {summary.accuracy:.4f} over the scored utterances  "
            f"(reference Ascend310P3: {summary.reference_accuracy:.3f})"
        )
    for label, rates in (("all utterances", summary.all_utterances), ("long utterances", summary.long_utterances)):
        if rates.wer is not None:
            print(f"over {label} with a reference: WER {rates.wer:.4f}, CER {rates.cer:.4f}")
    written = [str(p) for p in (report_path, transcripts_path, args.ctm, args.srt) if p is not None]
    print(f"report: {written[0]}; transcripts: {', '.join(written[1:])}")


if __name__ == "__main__":
    run_cli(main)
