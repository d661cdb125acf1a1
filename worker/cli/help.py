"""The epilog every command's ``--help`` ends with: worked examples, kept as written."""

from __future__ import annotations


def examples(*lines: str) -> str:
    """``Examples:`` and the command lines, indented; ``\\b`` stops click from re-wrapping
    them into one paragraph."""
    title = "Example:" if len(lines) == 1 else "Examples:"
    return "\b\n" + title + "\n" + "\n".join(f"  {line}" for line in lines)
