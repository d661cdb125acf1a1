"""Server-side ``post_processing_steps``: ``json-repair`` on content and tool arguments.

The gateway's step is most likely the Python ``json_repair`` library, which extracts JSON from
fences and prose and closes truncated structures rather than failing. It fails only when there is
no JSON to find at all; the gateway then answers 500 instead of passing broken JSON through.
"""

from __future__ import annotations

import json
from typing import Any

import json_repair


class RepairError(Exception):
    """The output held nothing ``json_repair`` could turn into JSON."""


def wants_repair(req: dict[str, Any]) -> bool:
    steps = req.get("post_processing_steps") or []
    return any(isinstance(s, dict) and s.get("type") == "json-repair" for s in steps)


def repair(text: str) -> str:
    """``text`` if it already parses, else the repaired JSON text; ``RepairError`` if none."""
    try:
        json.loads(text)
        return text
    except ValueError:
        pass
    fixed = json_repair.repair_json(text)
    if not isinstance(fixed, str) or fixed.strip() in ("", '""'):
        raise RepairError(text[:80])
    try:
        json.loads(fixed)
    except ValueError as exc:
        raise RepairError(text[:80]) from exc
    return fixed
