"""Per-process cache of compiled templates and schemas, keyed by their immutable row ids.

Rows in ``templates`` and ``schemas`` never change (content-addressed), so a worker compiles a
template once for a 50,000-job batch instead of once per job.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy.orm import Session

from models.content import Schema, Template
from worker.prompts import CompiledTemplate, compile_template
from worker.schemas import check_schema


class ContentCache:
    def __init__(self, max_entries: int = 512) -> None:
        self._templates: dict[int, CompiledTemplate] = {}
        self._schemas: dict[int, Any] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def load(
        self, session: Session, template_id: int, schema_id: int
    ) -> tuple[CompiledTemplate, Any]:
        with self._lock:
            tpl = self._templates.get(template_id)
            schema = self._schemas.get(schema_id)
        if tpl is None:
            row = session.get(Template, template_id)
            assert row is not None, f"template {template_id} missing"
            tpl = compile_template(row.body, source=f"template #{template_id}")
        if schema is None:
            srow = session.get(Schema, schema_id)
            assert srow is not None, f"schema {schema_id} missing"
            schema = srow.body
            # Checked at enqueue; again here, once per process, for rows written otherwise
            # (an older tbatch, by hand): a schema no call can be validated against fails
            # its job before the call, not after paying for it.
            check_schema(schema, source=f"schema #{schema_id}")
        # Rows are immutable, so two threads loading the same id at once store equal values.
        with self._lock:
            if len(self._templates) >= self._max:
                self._templates.clear()
            if len(self._schemas) >= self._max:
                self._schemas.clear()
            self._templates[template_id] = tpl
            self._schemas[schema_id] = schema
        return tpl, schema
