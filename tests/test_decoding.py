"""Decoders: beam search with an n-gram LM beside greedy, chosen by name; the files it reads checked first."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ngram import arpa_text, write_arpa
from tests.conftest import fails, run_main, run_pipeline
from wav2vec2_pipeline.beam import KENLM_BINARY_MAGIC
from wav2vec2_pipeline.ctc import greedy_words
from wav2vec2_pipeline.decoding import BeamOptions, DecodingOptions, make_decoder
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import BASE_960H_VOCAB

VOCAB = BASE_960H_VOCAB
BLANK = VOCAB.index("<pad>")


def beam(**options) -> DecodingOptions:
    return DecodingOptions(decoder="beam", beam=BeamOptions(decode_workers=1, **options))


def spelling_logits(text: str, frames_per_char: int = 3) -> np.ndarray:
    """Logits whose best path spells `text` (`|` between words), each letter then blanks."""
    logits = np.full((frames_per_char * len(text), len(VOCAB)), -8.0, np.float32)
    for i, char in enumerate(text):
        logits[frames_per_char * i, VOCAB.index(char)] = 0.0
        logits[frames_per_char * i + 1 : frames_per_char * (i + 1), BLANK] = 0.0
    return logits


@pytest.mark.parametrize("seed", range(4))
def test_lexicon_free_search_without_the_lm_gives_greedys_words_and_times(seed) -> None:
    logits = np.random.default_rng(seed).normal(size=(300, len(VOCAB))).astype(np.float32) * 4
    decoder = make_decoder(beam(lexicon_free=True, lm_weight=0.0, word_score=0.0), VOCAB)
    assert decoder(logits) == greedy_words(logits, VOCAB)


def test_with_the_lm_the_search_spells_a_word_the_lm_knows_where_greedy_misspells_it(tmp_path) -> None:
    logits = spelling_logits("HELO|WORLD")
    logits[7, VOCAB.index("L")] = -0.5  # the second L: a little below the blank after the first
    assert [w.word for w in greedy_words(logits, VOCAB)] == ["HELO", "WORLD"]
    lm = write_arpa(["HELLO WORLD"] * 3 + ["HELLO THERE", "THE WORLD"], tmp_path / "lm.arpa")
    words = make_decoder(beam(lm=lm, lm_weight=2.0), VOCAB)(logits)
    assert [w.word for w in words] == ["HELLO", "WORLD"]
    assert words[0].start_frame == 0 and words[-1].end_frame <= logits.shape[0]


def test_a_lexicon_given_limits_the_words_and_a_binary_lm_needs_one(tmp_path) -> None:
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("HELLO\tH E L L O |\nWORLD\tW O R L D |\n")
    words = make_decoder(beam(lexicon=lexicon), VOCAB)(spelling_logits("HELO|WORLD"))
    assert [w.word for w in words] == ["HELLO", "WORLD"]
    binary = tmp_path / "lm.bin"
    binary.write_bytes(KENLM_BINARY_MAGIC + bytes(64))
    with pytest.raises(PipelineError, match=r"is a KenLM binary, whose words cannot be listed: pass --lexicon"):
        make_decoder(beam(lm=binary), VOCAB)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not an lm\n", r"is neither an ARPA file .* nor a KenLM binary"),
        (arpa_text(["hello world", "the world"]), r"3 of 3 words are not in upper case .* \(e\.g\. 'hello', 'the'"),
        (arpa_text(["CAFÉ NOËL", "HELLO"]), r"2 of 3 words hold letters the model's vocabulary has not .*'CAFÉ' \(É\)"),
    ],
    ids=["not an lm", "lower case", "foreign letters"],
)
def test_an_lm_the_search_cannot_use_is_one_line(tmp_path, content, message) -> None:
    lm = tmp_path / "lm.arpa"
    lm.write_text(content)
    with pytest.raises(PipelineError, match=message):
        make_decoder(beam(lm=lm), VOCAB)


def test_unreadable_or_malformed_inputs_of_the_search_are_one_line(tmp_path) -> None:
    with pytest.raises(PipelineError, match=r"^--lm .*missing\.arpa: cannot read it"):
        make_decoder(beam(lm=tmp_path / "missing.arpa"), VOCAB)
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("HELLO H E L L O |\nWORLD\n")
    with pytest.raises(PipelineError, match=r"line 2: 'WORLD' has a word and no spelling"):
        make_decoder(beam(lexicon=lexicon), VOCAB)
    lexicon.write_text("HELLO H E L L O |\nhi h i |\n")
    with pytest.raises(PipelineError, match=r"1 of 2 words are not in upper case"):
        make_decoder(beam(lexicon=lexicon), VOCAB)
    with pytest.raises(PipelineError, match=r"needs the words it may spell: --lm .*, --lexicon, or --lexicon_free"):
        make_decoder(beam(), VOCAB)
    for bad in ({"beam_size": 0}, {"beam_size": 2_000_000_000}, {"beam_size_token": 10**11},
                {"lm_weight": float("nan")}, {"decode_workers": 0}, {"decode_workers": 10**6}):  # fmt: skip
        with pytest.raises(PipelineError, match=f"--{next(iter(bad))}"):
            BeamOptions(**bad)


@pytest.mark.parametrize(
    ("cut", "message"),
    [(lambda text: text[:300], r"^the beam search cannot be built from --lm .*lm\.arpa: "),
     (lambda text: text.split("\\2-grams:")[0].replace("ngram 2=", "ngram 9=") + "\\end\\\n",
      r"^the beam search cannot be built from --lm "),
     (lambda text: arpa_text([""]), r"has no word besides <s>, </s>, <unk>: nothing to spell")],
    ids=["truncated", "counts that lie", "no word"],
)
def test_an_lm_kenlm_cannot_load_is_one_line_when_the_decoder_is_built(tmp_path, cut, message) -> None:
    lm = tmp_path / "lm.arpa"
    lm.write_text(cut(arpa_text(["HELLO WORLD", "THE WORLD IS HERE"])))
    with pytest.raises(PipelineError, match=message) as raised:
        make_decoder(beam(lm=lm), VOCAB)
    assert "\n" not in str(raised.value)


@pytest.fixture(scope="module")
def transcribed(tmp_path_factory, dataset, traced_path, tiny_model_dir) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("decoding")
    run = run_pipeline(work, dataset[0], 2, traced_path, tiny_model_dir, "--long_audio", "chunk")
    return run.output_dir, run.data_path


def test_postprocess_decodes_by_name_and_the_report_names_the_decoder_and_its_files(tmp_path, transcribed) -> None:
    output_dir, data_path = transcribed
    words = sorted({w for line in (data_path / "ground_truth_texts.txt").read_text().splitlines()
                    for w in line.split()[1:]})  # fmt: skip
    lm = write_arpa([" ".join(words)] * 2, tmp_path / "lm.arpa")
    common = ("--input", output_dir, "--batch_size", 2, "--data_path", data_path)
    greedy = run_main("wav2vec2_postprocess.py", *common, "--report", tmp_path / "greedy.json").stdout
    printed = run_main("wav2vec2_postprocess.py", *common, "--report", tmp_path / "beam.json", "--decoder", "beam",
                         "--lm", lm, "--lm_weight", 2, "--decode_workers", 2, "--ctm", tmp_path / "words.ctm").stdout
    assert "decoding (greedy, 1 process(es))" in greedy and "decoding (beam, 2 process(es))" in printed
    report = json.loads((tmp_path / "beam.json").read_text())
    decoding = report["summary"]["decoding"]
    assert decoding["decoder"] == "beam" and "lm_weight=2.0" in decoding["options"]
    assert decoding["lm_sha256"] == hashlib.sha256(lm.read_bytes()).hexdigest() and decoding["lexicon_sha256"] is None
    assert decoding["seconds"] > 0 and decoding["model_audio_s_per_s"] > 0
    seconds = {u["utt_id"]: u["seconds"] for u in report["utterances"]}
    for utterance in report["utterances"]:
        assert set((utterance["hypothesis"] or "").split()) <= set(words)  # the lexicon is the LM's words
        for word in utterance["words"] or []:
            assert 0 <= word["start"] <= word["end"] <= seconds[utterance["utt_id"]] + 0.02
    assert (tmp_path / "words.ctm").read_text().count("\n") == sum(len(u["words"] or []) for u in report["utterances"])


def test_beam_options_without_the_beam_decoder_are_one_line(tmp_path, transcribed) -> None:
    output_dir, data_path = transcribed
    lm = write_arpa(["HELLO"], tmp_path / "lm.arpa")
    message = fails("wav2vec2_postprocess.py", "--input", output_dir, "--batch_size", 2, "--data_path", data_path,
                    "--report", tmp_path / "r.json", "--lm", lm)  # fmt: skip
    assert message == "error: --lm is an option of the beam search: pass --decoder beam with it\n"
    assert not (tmp_path / "r.json").exists()


def test_the_in_memory_core_takes_the_decoder_by_name(traced_path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    from wav2vec2_pipeline.backends import TorchScriptBackend
    from wav2vec2_pipeline.core import transcribe
    from wav2vec2_pipeline.device import DeviceOptions
    from wav2vec2_pipeline.planning import CHUNK, Layout

    rng = np.random.default_rng(5)
    audio = {f"u{i}": rng.normal(size=n).astype(np.float32) for i, n in enumerate((20_000, 150_000, 64_000))}
    backend = TorchScriptBackend(DeviceOptions())
    backend.load(traced_path)
    laid_out = {"batch_size": 2, "layout": Layout((100_000,), CHUNK), "feature_extractor": Wav2Vec2FeatureExtractor()}
    greedy = transcribe(audio, backend, **laid_out)
    searched = transcribe(audio, backend, **laid_out, decoding=beam(lexicon_free=True, lm_weight=0.0))
    assert searched == greedy and any(greedy.values())
