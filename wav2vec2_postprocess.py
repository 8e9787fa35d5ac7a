"""CTC decoding of the logits bins: transcripts with word times, and a WER / accuracy (1 - CER) report."""

from pathlib import Path

from wav2vec2_pipeline.decoding import BeamOptions
from wav2vec2_pipeline.errors import ArgumentParser, PipelineError, run_cli
from wav2vec2_pipeline.options import add_options, build, given
from wav2vec2_pipeline.postprocess import PostprocessOptions
from wav2vec2_pipeline.registry import WRITERS


def main() -> None:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--input", type=Path, required=True, help="dir of logits bins from compile.py")
    parser.add_argument("--data_path", type=Path, default=Path("data"), help="dir of the batch map and ground truth")
    add_options(parser, PostprocessOptions)
    parser.add_argument("--report", type=Path, help="JSON report path (default: DATA_PATH/report_bsN.json)")
    parser.add_argument("--transcripts", type=Path,
                        help="JSON lines, one per utterance, with word times (default: transcripts_bsN.jsonl beside "
                        "the report)")  # fmt: skip
    parser.add_argument("--srt", type=Path, help="also write one SubRip subtitle file per utterance into this dir")
    parser.add_argument("--ctm", type=Path, help="also write every word's time as NIST CTM to this file")
    args = parser.parse_args()
    options = build(PostprocessOptions, args)
    beam_only = given(args, BeamOptions)
    if beam_only and options.decoding.decoder != "beam":
        raise PipelineError(f"{beam_only[0]} is an option of the beam search: pass --decoder beam with it")

    from wav2vec2_pipeline.batchmap import GROUND_TRUTH_FILE, map_path
    from wav2vec2_pipeline.fileio import check_output_file
    from wav2vec2_pipeline.outputs import Writer
    from wav2vec2_pipeline.postprocess import Report, postprocess, transcripts, write_report
    from wav2vec2_pipeline.records import is_saved

    report_path = args.report or args.data_path / f"report_bs{options.batch_size}.json"
    paths = {"transcripts": args.transcripts or report_path.with_name(f"transcripts_bs{options.batch_size}.jsonl"),
             "ctm": args.ctm, "srt": args.srt}  # fmt: skip
    writers: dict[str, Writer] = {name: WRITERS.load(name) for name, path in paths.items() if path is not None}
    inputs = (map_path(args.data_path, options.batch_size), args.data_path / GROUND_TRUTH_FILE)
    files = [report_path, *(paths[name] for name in writers if name != "srt")]
    if len({path.resolve() for path in files}) != len(files):
        raise PipelineError("--report, --transcripts and --ctm must name different files")
    check_output_file(report_path, "--report", lambda p: is_saved(Report, p), keep=inputs)
    for name, writer in writers.items():  # before any work: nothing is written where one would be refused
        writer.check(paths[name], inputs)

    report = postprocess(args.input, args.data_path, options)
    write_report(report_path, report)
    texts = transcripts(report)
    for name, writer in writers.items():
        writer.write(paths[name], texts)
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
    decoding = summary.decoding
    model = f"; the model ran {decoding.model_audio_s_per_s:.1f}" if decoding.model_audio_s_per_s else ""
    rate = f"{decoding.audio_s_per_s:.1f} audio s per s" if decoding.audio_s_per_s else "no audio"
    print(f"decoding ({decoding.decoder}, {decoding.workers} process(es)): {decoding.seconds:.2f} s, {rate}{model}")
    written = [str(p) for p in (report_path, paths["transcripts"], args.ctm, args.srt) if p is not None]
    print(f"report: {written[0]}; transcripts: {', '.join(written[1:])}")


if __name__ == "__main__":
    run_cli(main)
