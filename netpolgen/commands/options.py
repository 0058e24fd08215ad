"""Options every subcommand shares: ``--format`` (what is printed) and ``--input-format`` (what
the traffic sources are), with the old spellings accepted as deprecated aliases."""

from __future__ import annotations

import sys

from netpolgen.errors import UsageError

OUTPUT_FORMATS = ("text", "json", "markdown", "junit")
FORMAT_HELP = "What is printed: text, json (see netpolgen/schemas/), markdown (a PR comment) or junit (CI)."


def output_format(value: str) -> str:
    if value not in OUTPUT_FORMATS:
        raise UsageError(None, "--format", f"{value!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    return value


def warn_deprecated(old: str, new: str) -> None:
    print(f"Warning: {old} is deprecated; use {new}", file=sys.stderr)


def input_format(input_fmt: str | None, source_format: str | None, known: tuple[str, ...] | list[str]) -> str | None:
    """``--input-format``, or the deprecated ``--source-format`` (with a warning)."""
    if source_format is not None:
        if source_format not in known:  # an error is one line: no warning before it
            raise UsageError(None, "--input-format", f"unknown format {source_format!r}; known: {', '.join(known)}")
        warn_deprecated("--source-format", "--input-format")
        if input_fmt is not None and input_fmt != source_format:
            raise UsageError(None, "--input-format", f"given as {input_fmt!r} and as --source-format {source_format!r}")
        input_fmt = input_fmt or source_format
    if input_fmt is not None and input_fmt not in known:
        raise UsageError(None, "--input-format", f"unknown format {input_fmt!r}; known: {', '.join(known)}")
    return input_fmt
