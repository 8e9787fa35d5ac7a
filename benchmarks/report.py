"""Where a benchmark's table goes: printed, and written under its results dir for the README to quote."""

from pathlib import Path


def save_table(lines: list[str], output: Path, name: str) -> None:
    table = "\n".join(lines) + "\n"
    output.mkdir(parents=True, exist_ok=True)
    (output / name).write_text(table)
    print(table)
