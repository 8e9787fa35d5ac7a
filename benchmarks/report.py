"""Where a benchmark's table goes: printed, and written under its results dir with the machine it ran on."""

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from wav2vec2_pipeline.device import ISA_CAP, capped, cpu_class, cpu_flags, reported_flags

REPO_ROOT = Path(__file__).resolve().parents[1]
CPUINFO = Path("/proc/cpuinfo")
CLASS_FLAGS = ("avx2", "avx_vnni", "avx512_vnni", "avx512_bf16", "amx_int8")
"""The flags that decide which CPU paths run fast (int8 dot products, bf16, AMX)."""


def cpu_model_and_flags(cpuinfo: Path = CPUINFO) -> tuple[str, frozenset[str]] | None:
    """The CPU's model name and flags as Linux reports them (no ISA cap applied); None without /proc/cpuinfo."""
    model, flags = "unknown CPU", frozenset[str]()
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "unknown CPU":
                model = value.strip() or model
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
    except OSError:
        return None
    return model, flags


def cpu_description(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name, which of CLASS_FLAGS it has and its class, and the class an ONEDNN_MAX_CPU_ISA cap
    makes of it, e.g. `AMD EPYC (avx2 yes, ..., amx_int8 no; class avx512-bf16)`."""
    found = cpu_model_and_flags(cpuinfo)
    if found is None:
        return "unknown CPU (no /proc/cpuinfo)"
    model, flags = found
    present = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CLASS_FLAGS)
    cap = os.environ.get(ISA_CAP, "")
    emulated = (f"; emulating class {cpu_class(capped(flags, cap))} with {ISA_CAP}={cap} (OpenVINO and torch's oneDNN "
                f"honour it, ONNX Runtime does not)" if capped(flags, cap) != flags else "")  # fmt: skip
    return f"{model} ({present}; class {cpu_class(flags)}{emulated})"


def class_name() -> str:
    """The CPU class the runtimes here see (this CPU's, or the one an ONEDNN_MAX_CPU_ISA cap emulates), for the
    name of a results file kept per class."""
    return cpu_class(cpu_flags()) + ("-emulated" if cpu_flags() != reported_flags() else "")


def git_commit(repo: Path = REPO_ROOT) -> str:
    """The short hash of HEAD, `-dirty` where tracked files differ from it; `unknown` without git or a repository."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def results_header(cpuinfo: Path = CPUINFO, repo: Path = REPO_ROOT) -> str:
    """One line naming the CPU, the commit and the UTC date, so a results file says where its figures come from."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"Measured on: {cpu_description(cpuinfo)}; commit {git_commit(repo)}; {date}"


def save_table(lines: list[str], output: Path, name: str) -> None:
    table = "\n".join(lines) + "\n"
    output.mkdir(parents=True, exist_ok=True)
    (output / name).write_text(f"{results_header()}\n\n{table}")
    print(table)
