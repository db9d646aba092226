"""What every benchmark shares: child processes, percentiles, the machine, and its own
section of docs/benchmarks.md."""

import contextlib
import math
import platform
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType


def percentile_ms(sorted_ns: Sequence[int], percent: float) -> float:
    """Nearest rank: the smallest value with at least `percent` of the values at or below it."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, math.ceil(len(sorted_ns) * percent / 100))
    return sorted_ns[rank - 1] / 1e6


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown"


def replace_section(document: str, heading: str, section: str) -> str:
    """The document with the section under `heading` replaced, or appended; others untouched."""
    lines = document.splitlines()
    if heading not in lines:
        head = document.rstrip("\n") or "# Benchmarks"
        return f"{head}\n\n{section}"
    start = lines.index(heading)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith(("# ", "## "))),
        len(lines),
    )
    after = "\n".join(lines[end:])
    return (
        "\n".join(lines[:start])
        + ("\n" if start else "")
        + section
        + (f"\n{after}\n" if after else "")
    )


def record(path: Path, heading: str, section: str) -> None:
    document = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(document, heading, section), encoding="utf-8")


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so that servers and scratch databases are cleaned up."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


STOP_SECONDS = 15.0


@contextlib.contextmanager
def child_process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """The measured server in its own process, stopped (SIGTERM, then SIGKILL) on exit."""
    child = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
