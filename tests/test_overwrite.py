"""A command writes only what it wrote before: never over a file or dir another program (or the user) wrote,
nor two of its outputs into one file."""

import pytest

from tests.conftest import copy_run, fails, postprocess_fails, tree


def test_outputs_never_overwrite_what_they_did_not_write(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    (work / "notes.txt").write_text("mine")
    before = tree(work)
    for flag, target in (("--report", work / "out" / "manifest.json"), ("--report", work / "notes.txt"),
                         ("--transcripts", work / "notes.txt"), ("--ctm", work / "notes.txt")):  # fmt: skip
        assert "exists and is not an earlier output of this kind" in postprocess_fails(work, flag, target)
    assert tree(work) == before


def test_outputs_are_not_written_over_binary_or_other_text_files(done, tmp_path, traced_path) -> None:
    work = copy_run(done, tmp_path)
    (work / "victim.pth").write_bytes(traced_path.read_bytes())
    (work / "notes.txt").write_text("\nIMPORTANT: keep\n")
    before = tree(work)
    for flag, target in (("--ctm", work / "victim.pth"), ("--transcripts", work / "victim.pth"),
                         ("--ctm", work / "notes.txt"), ("--transcripts", work / "in" / "batch_0.bin")):  # fmt: skip
        assert "exists and is not an earlier output of this kind" in postprocess_fails(work, flag, target)
    assert "is a file; pass a dir" in postprocess_fails(work, "--srt", work / "notes.txt" / "subtitles")
    assert "cannot create /proc/no_such_dir" in postprocess_fails(work, "--srt", "/proc/no_such_dir")
    assert tree(work) == before


@pytest.mark.parametrize("foreign", ["logits", "user manifest", "stray bins"])
def test_preprocess_never_writes_over_a_dir_it_did_not_write_even_with_overwrite(done, tmp_path, dataset, foreign):
    work = copy_run(done, tmp_path)
    target = {"logits": work / "out", "user manifest": work / "mine", "stray bins": work / "mine"}[foreign]
    if foreign == "user manifest":
        target.mkdir()
        (target / "manifest.json").write_text('{"my": "data"}')
    if foreign == "stray bins":
        target.mkdir()
        (target / "batch_7.bin").write_bytes(b"mine")
    before = tree(work)
    message = fails("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", target,
                    "--data_path", work / "data2", "--overwrite")  # fmt: skip
    expected = {"logits": "was written by compile.py", "user manifest": "is not of format",
                "stray bins": "bin(s) that no run of this pipeline wrote"}[foreign]  # fmt: skip
    assert expected in message and tree(work) == before


def test_two_outputs_naming_one_file_are_refused(done, tmp_path) -> None:
    work = copy_run(done, tmp_path)
    assert "must name different files" in postprocess_fails(work, "--transcripts", work / "report.json")
