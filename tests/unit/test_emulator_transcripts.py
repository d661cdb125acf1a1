"""Transcript generation and listing pages, without a server."""

from __future__ import annotations

import time
import uuid
from datetime import date
from pathlib import Path

import pytest

from emulator.routes import listing
from emulator.world import transcripts

TODAY = date(2026, 9, 24)
BASE = "http://emu"


def test_generation_is_deterministic_fast_and_lazy() -> None:
    started = time.perf_counter()
    store = transcripts.generate(5, 5000, TODAY, 7)
    assert time.perf_counter() - started < 2.0
    again = transcripts.generate(5, 5000, TODAY, 7)
    assert [m.id for m in store.newest_first()] == [m.id for m in again.newest_first()]
    assert transcripts.generate(6, 5, TODAY, 7).newest_first()[0].id not in store.items
    meta = store.newest_first()[0]
    assert uuid.UUID(meta.id).version == 4
    assert store.text(meta) == again.text(again.items[meta.id])
    days = {m.created.date() for m in store.items.values()}
    assert max(days) == TODAY and len(days) == 7
    assert {m.status for m in store.items.values()} == set(transcripts.STATUSES)
    assert any(m.deleted for m in store.items.values())
    minutes = [m.minutes for m in store.items.values()]
    assert min(minutes) == 1 and max(minutes) == 60


def test_text_length_follows_minutes() -> None:
    store = transcripts.generate(1, 300, TODAY, 7)
    metas = sorted(store.items.values(), key=lambda m: m.minutes)
    for meta in (metas[0], metas[-1]):
        words = len(store.text(meta).split())
        assert 0.8 * 150 * meta.minutes <= words <= 1.3 * 150 * meta.minutes + 60


def test_pages_chain_both_ways() -> None:
    store = transcripts.generate(2, 23, TODAY, 3)
    first = listing.page(store, {"limit": "10"}, BASE)
    assert first["page_details"]["next_url"] is None
    ordered = [m.id for m in store.newest_first()]
    assert [t["id"] for t in first["transcripts"]] == ordered[:10]
    older = listing.page(store, {"limit": "10", "before_id": ordered[9]}, BASE)
    assert [t["id"] for t in older["transcripts"]] == ordered[10:20]
    newer = listing.page(store, {"limit": "4", "after_id": ordered[10]}, BASE)
    assert [t["id"] for t in newer["transcripts"]] == ordered[6:10]
    last = listing.page(store, {"limit": "10", "before_id": ordered[19]}, BASE)
    assert last["page_details"]["prev_url"] is None and last["page_details"]["result_count"] == 3


def test_list_skips_older_than_90_days_and_loads_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        '{"id": "a", "text": "Hello there my friend.", "status": "completed",'
        ' "created": "2026-09-20T10:00:00Z"}\n'
        '{"id": "b", "text": "", "status": "error", "created": "2026-01-01T10:00:00"}\n'
        '{"id": "c", "text": "x", "status": "completed", "created": "2026-09-21T10:00:00",'
        ' "deleted": true}\n'
    )
    store = transcripts.load_jsonl(path, 0, TODAY)
    assert store.text(store.items["a"]) == "Hello there my friend."
    assert store.items["c"].deleted
    page = listing.page(store, {}, BASE)
    assert [t["id"] for t in page["transcripts"]] == ["c", "a"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no id"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        transcripts.load_jsonl(bad, 0, TODAY)
