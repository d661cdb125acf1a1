"""`tbatch results` output: one record per job as JSON lines or CSV, streamed (the records come
in keyset pages from ``queries.iter_results``, so memory stays flat over a million jobs)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii
from typing import IO, Any

FIELDS = ["job_id", "transcript_id", "status", "result", "request_id", "model", "repaired", "error"]


def write_results(records: Iterable[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    """Records of ``iter_results``: ``result`` is JSON text, written as is (not re-encoded)."""
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS)
        writer.writeheader()
        for rec in records:
            writer.writerow(rec)
            count += 1
    else:
        for rec in records:
            out.write(_jsonl(rec))
            count += 1
    return count


def _jsonl(rec: dict[str, Any]) -> str:
    """One line, fields in FIELDS order, the result spliced in unparsed. Built by hand:
    ``json.dumps`` per record (a new encoder each call once options are given) was most of
    the export's time after the result stopped being parsed (py-spy)."""
    fields = (
        f'"{key}": {rec[key] if key == "result" and rec[key] is not None else _scalar(rec[key])}'
        for key in FIELDS
    )
    return "{" + ", ".join(fields) + "}\n"


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None or isinstance(value, bool):
        return _LITERALS[value]
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, default=str)


_LITERALS = {None: "null", True: "true", False: "false"}
