"""Splitting a run among N workers: which bins a worker owns, and the options that say so."""

import re
from dataclasses import dataclass

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.options import option


@dataclass(frozen=True)
class Shard:
    """One of N workers of a run: bin i (0-based, in plan order) is shard (i mod N) + 1's, round-robin, since
    bucketed bins are sorted by length. Planning is global, so every worker sees the same bins."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise PipelineError(f"--shard {self.index}/{self.count}: K/N needs 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"(\d+)/(\d+)", text, re.ASCII)
        if match is None:
            raise PipelineError(f"--shard {text!r}: expected K/N, e.g. 2/4 for the second of four workers")
        return cls(int(match.group(1)), int(match.group(2)))

    def owns(self, position: int) -> bool:
        return position % self.count == self.index - 1

    @property
    def name(self) -> str:
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True, kw_only=True)
class Split:
    """How a stage that writes bins is run: whole, as one of N workers, or as the merge of the workers' bins."""

    shard: Shard | None = option(None, "write only the K-th of N workers' bins (bin i is shard i mod N + 1's)",
                                 type=Shard.parse, metavar="K/N")  # fmt: skip
    merge: bool = option(False, "after all N --shard runs: check each finished, then write the manifest")

    def __post_init__(self) -> None:
        if self.shard is not None and self.merge:
            raise PipelineError("--shard and --merge go in separate runs: the shards first, then one --merge")

    def check(self, overwrite: bool) -> None:
        if self.merge and overwrite:
            raise PipelineError(
                "--merge writes no bin, so --overwrite means nothing there: pass it to the --shard runs"
            )
