"""`tbatch results` output: one record per job as JSON lines or CSV, streamed (the records come
in keyset pages from ``queries.iter_results``, so memory stays flat over a million jobs).

With an errors output, succeeded jobs go to the main output and every other job to the errors
one, so a pipeline that reads only the successes still has the failures in a file beside them.
``flatten`` (CSV) turns the schema's top-level properties into ``result.<name>`` columns.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import IO, Any

from models.vocabulary import JobStatus

FIELDS = [
    "job_id",
    "custom_id",
    "transcript_id",
    "status",
    "result",
    "metadata",
    "request_id",
    "model",
    "repaired",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "finished_at",
    "error",
]
_SPLICED = ("result", "metadata")  # JSON text from the database, written as is


class RecordWriter:
    """Writes records to one output in one format; ``flatten`` names the result properties
    that become columns (CSV only: JSON lines carry the whole result already)."""

    def __init__(self, fmt: str, out: IO[str], *, flatten: Sequence[str] = ()) -> None:
        self._fmt = fmt
        self._out = out
        self._flatten = list(flatten)
        self.count = 0
        self._csv: csv.DictWriter[str] | None = None
        if fmt == "csv":
            columns = [f for f in FIELDS if not (flatten and f == "result")]
            columns += [f"result.{name}" for name in self._flatten]
            self._csv = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
            self._csv.writeheader()

    def write(self, rec: dict[str, Any]) -> None:
        self.count += 1
        if self._csv is None:
            self._out.write(_jsonl(rec))
            return
        row = {key: _csv_value(value) for key, value in rec.items()}
        if self._flatten:
            data = json.loads(rec["result"]) if rec["result"] is not None else None
            for name in self._flatten:
                value = data.get(name) if isinstance(data, dict) else None
                row[f"result.{name}"] = _csv_value(value, encode=True)
        self._csv.writerow(row)


def write_results(
    records: Iterable[dict[str, Any]],
    fmt: str,
    out: IO[str],
    *,
    errors: IO[str] | None = None,
    flatten: Sequence[str] = (),
) -> int:
    """Records of ``iter_results`` to ``out`` (and the ones not succeeded to ``errors``, if
    given); returns how many went to ``out``."""
    main = RecordWriter(fmt, out, flatten=flatten)
    failed = None if errors is None else RecordWriter(fmt, errors)
    for rec in records:
        if failed is not None and rec["status"] != JobStatus.SUCCEEDED:
            failed.write(rec)
        else:
            main.write(rec)
    return main.count


def schema_columns(schemas: Iterable[Any]) -> list[str]:
    """The top-level properties of the batch's schemas, in declaration order, each once."""
    names: dict[str, None] = {}
    for schema in schemas:
        properties = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(properties, dict):
            names.update(dict.fromkeys(properties))
    return list(names)


def _csv_value(value: Any, *, encode: bool = False) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if encode and isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if encode and isinstance(value, bool):
        return "true" if value else "false"
    return value


def _jsonl(rec: dict[str, Any]) -> str:
    """One line, fields in FIELDS order, the result spliced in unparsed. Built by hand:
    ``json.dumps`` per record (a new encoder each call once options are given) was most of
    the export's time after the result stopped being parsed (py-spy)."""
    fields = (
        f'"{key}": {rec[key] if key in _SPLICED and rec[key] is not None else _scalar(rec[key])}'
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
    if isinstance(value, datetime):
        return f'"{value.isoformat()}"'
    return json.dumps(value, default=str)


_LITERALS = {None: "null", True: "true", False: "false"}
