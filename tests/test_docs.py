"""The README stays a short user's page whose links hold; benchmark results files say where they were measured."""

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks.report import CLASS_FLAGS, cpu_description, git_commit, results_header, save_table
from tests.conftest import REPO_ROOT
from wav2vec2_pipeline import device

README = REPO_ROOT / "README.md"
PAGES = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)  # code blocks hold no links
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_readme_is_at_most_200_lines() -> None:
    assert len(README.read_text().splitlines()) <= 200


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_resolves_to_a_file(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path = target.split("#", 1)[0]
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO_ROOT).as_posix())
def test_no_paths_outside_the_repository_or_issue_numbers(page: Path) -> None:
    text = page.read_text()
    assert "../shared" not in text
    assert not re.search(r"\bissues? #?\d+", text, flags=re.IGNORECASE)


def test_readme_keeps_the_set_up_command_ci_runs() -> None:
    assert "python3 -m pip install -r requirements.txt -r requirements-ray.txt" in README.read_text()


def test_results_file_starts_with_the_cpu_commit_and_date(tmp_path) -> None:
    before = datetime.now(UTC)
    save_table(["| a | b |", "| --- | --- |", "| 1 | 2 |"], tmp_path / "results", "table.md")
    after = datetime.now(UTC)
    header, blank, *table = (tmp_path / "results" / "table.md").read_text().splitlines()
    assert header == header.strip() and blank == "" and table == ["| a | b |", "| --- | --- |", "| 1 | 2 |"]
    assert cpu_description() in header and all(f"{flag} " in header for flag in CLASS_FLAGS)
    assert f"commit {git_commit()};" in header
    assert any(f"; {moment:%Y-%m-%d} " in header for moment in (before, after)) and header.endswith(" UTC")


def test_header_reads_the_cpu_and_the_commit(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2 avx512_vnni\n"
        "processor\t: 1\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx2 avx512_vnni\n"
    )
    assert cpu_description(cpuinfo) == (
        "Some CPU 9000 (avx2 yes, avx_vnni no, avx512_vnni yes, avx512_bf16 no, amx_int8 no; class avx512-vnni)"
    )
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert cpu_description(cpuinfo).endswith("; class avx512-vnni; emulating class avx2 with ONEDNN_MAX_CPU_ISA="
                                              "AVX512_CORE (OpenVINO and torch's oneDNN honour it, ONNX Runtime does "
                                              "not))")  # fmt: skip
    assert cpu_description(tmp_path / "absent").startswith("unknown CPU")
    assert git_commit(tmp_path) == "unknown"  # not a git repository
    header = results_header(cpuinfo, tmp_path)
    assert re.fullmatch(r"Measured on: Some CPU 9000 \(.*\); commit unknown; \d{4}-\d\d-\d\d \d\d:\d\d UTC", header)


def test_auto_takes_on_each_cpu_class_the_path_the_readme_table_says() -> None:
    """The README's table of CPU classes (flags monkeypatched: a CPU of each class) is what `auto` does."""
    rows = re.findall(r"^\| `([a-z0-9-]+)`: [^|]+\| `([a-z0-9-]+)` \|", README.read_text(), re.MULTILINE)
    assert sorted(cpu_class for cpu_class, _ in rows) == sorted(device.CLASS_PATHS) == sorted(device.CLASS_EXAMPLES)
    for cpu_class, path in rows:
        assert device.cpu_class(device.CLASS_EXAMPLES[cpu_class]) == cpu_class
        assert device.cpu_default(device.CLASS_EXAMPLES[cpu_class], lambda module: True) == path, cpu_class


def test_commit_is_the_short_head_marked_dirty_when_tracked_files_differ(tmp_path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout.strip()

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git not available")
    (tmp_path / "f.txt").write_text("one\n")
    git("add", "f.txt")
    identity = ("-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false")
    git(*identity, "commit", "-q", "-m", "one")
    head = git("rev-parse", "--short", "HEAD")
    assert git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("not part of the commit\n")
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("two\n")
    assert git_commit(tmp_path) == f"{head}-dirty"
