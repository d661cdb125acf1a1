"""``POST /v1/chat/completions``: validation, transcript lookup, attempts, faults, repair.

One request walks ``[primary, *fallbacks[:depth]]``. Each model asked is counted in its own
(key, model) window. A 429 or a 5xx on one model moves on to the next; with no fallbacks set and
``fallback_config.retry`` not false, a 5xx is retried once on the same model after
``retry_delay_s`` (0.5 s). Validation errors and json-repair failures end the request at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from emulator.answers.model import Completion, complete
from emulator.answers.postprocess import RepairError, repair, wants_repair
from emulator.answers.source import analyse
from emulator.answers.success import Spent, reasoning_tokens, success_body
from emulator.rng import text_key, unit
from emulator.routes import envelopes as env
from emulator.routes.injection import content_text, inject, messages_of, prompt_tokens
from emulator.routes.validation import merged_attempts, validate
from emulator.world.catalog import ModelInfo, served
from emulator.world.faults import Fault, decide
from emulator.world.limits import Decision
from emulator.world.prompt_cache import marked
from emulator.world.state import EmulatorState, LogEntry

_UNLIMITED = 2**31
#: The gateway's documented default output cap (gateway-api.md section 2).
DEFAULT_MAX_TOKENS = 1000

#: Answers are generated off the event loop, one at a time (their caches are not thread-safe).
#: In a burst, sixty answers built in one loop turn would keep the loop from reading the
#: sockets of requests arriving meanwhile for a hundred milliseconds, and so from stamping
#: their arrival; from a thread, the loop gets the interpreter back within its switch interval.
_ANSWERS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="emulator-answers")


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    stream_usage: bool = False


class _Failure(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


@dataclass
class _Call:
    """Per-request context shared by the attempts."""

    state: EmulatorState
    entry: LogEntry
    key: str
    body: dict[str, Any]
    texts: dict[str, str]
    started_ns: int

    @property
    def rid(self) -> str:
        return self.entry.request_id


async def handle(state: EmulatorState, key: str, entry: LogEntry, raw: bytes) -> Reply:
    """The reply to one chat request; ``entry`` is filled in for the request log."""
    started = time.perf_counter_ns()
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        body = None
        errors = ["request body is not valid JSON"]
    else:
        errors = validate(body, served(state.config.region), state.config)
    if isinstance(body, dict):
        entry.model = body.get("model") if isinstance(body.get("model"), str) else None
        tid = body.get("transcript_id")
        entry.transcript_id = tid if isinstance(tid, str) else None
        _log_request_shape(entry, body)
    if errors:
        return Reply(400, env.error_body(400, env.INVALID_BODY, entry.request_id, errors))
    assert isinstance(body, dict)
    try:
        call = _Call(state, entry, key, body, _transcripts(state, body, entry.request_id), started)
        return await _walk(call)
    except _Failure as failure:
        return failure.reply


def _log_request_shape(entry: LogEntry, body: dict[str, Any]) -> None:
    """What tests check the gateway was sent: routing per model, caching marks and key."""
    entry.model_regions = [
        r.get("model_region") if isinstance(r.get("model_region"), str) else None
        for r in merged_attempts(body)
    ]
    entry.cache_control = marked(body)
    key = body.get("prompt_cache_key")
    entry.prompt_cache_key = key if isinstance(key, str) else None


def _transcripts(state: EmulatorState, body: dict[str, Any], rid: str) -> dict[str, str]:
    """Texts of every transcript the attempts name; 404/400 replies for bad ones."""
    texts: dict[str, str] = {}
    for req in merged_attempts(body):
        tid = req.get("transcript_id")
        if not isinstance(tid, str) or tid in texts:
            continue
        meta = state.store.get(tid)
        if meta is None:
            raise _Failure(Reply(404, env.error_body(404, "transcript not found", rid)))
        if meta.deleted:
            raise _Failure(Reply(404, env.error_body(404, "transcript deleted", rid)))
        if meta.status != "completed":
            problem = f"transcript {tid} has status {meta.status}; only completed can be injected"
            raise _Failure(Reply(400, env.error_body(400, env.INVALID_BODY, rid, [problem])))
        texts[tid] = state.store.text(meta)
    return texts


async def _walk(call: _Call) -> Reply:
    cfg = call.state.config
    attempts = merged_attempts(call.body)
    retry_cfg = call.body.get("fallback_config") or {}
    retry = len(attempts) == 1 and retry_cfg.get("retry", True) is not False
    primary: Decision | None = None
    last: Reply | None = None
    for index, req in enumerate(attempts):
        model = str(req["model"])
        info = served(cfg.region)[model]
        messages, source_text = _conversation(call, req)
        if prompt_tokens(messages) + _max_tokens(req) > info.context_length:
            if index == 0:
                raise _Failure(_context_error(call.rid))
            continue
        # The primary is counted at the request's arrival (what the gateway's limiter sees);
        # a fallback when the gateway turns to it.
        decision = _count(call, model, call.entry.ts if index == 0 else time.time())
        primary = primary or decision
        if not decision.allowed:
            call.entry.models_tried.append(model)
            call.entry.faults.append(None)
            last = _limited(call, model, decision, None)
            continue
        reply = await _attempt(call, req, info, messages, source_text, retry)
        last = reply
        if reply.status == 200 or reply.body.get("message") == env.REPAIR_FAILED:
            break
    assert last is not None
    return _with_headers(call, last, primary)


def _max_tokens(req: dict[str, Any]) -> int:
    """The output room the request reserves: a provider sizes input plus output against the
    context window, so an input that fits with no room left to answer is still too long."""
    value = req.get("max_tokens")
    return value if isinstance(value, int) else DEFAULT_MAX_TOKENS


def _conversation(call: _Call, req: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    messages = messages_of(req)
    tid = req.get("transcript_id")
    if isinstance(tid, str):
        messages, injected = inject(messages, call.texts[tid])
        if injected:
            return messages, call.texts[tid]
    users = [content_text(m) for m in messages if m.get("role") == "user"]
    fallback = content_text(messages[-1]) if messages else ""
    return messages, "\n".join(users) or fallback


def _count(call: _Call, model: str, at: float) -> Decision:
    cfg = call.state.config
    stats = call.state.models[model]
    stats.requests += 1
    limit = cfg.limit_for(model)
    allowed = limit.limit if cfg.rate_limit_enabled else _UNLIMITED
    sliding = cfg.window_kind == "sliding"
    return call.state.limiter.hit(call.key, model, allowed, limit.window_s, at, sliding=sliding)


def _limited(call: _Call, model: str, decision: Decision, fault: Fault | None) -> Reply:
    stats = call.state.models[model]
    stats.http_429 += 1
    stats.statuses["429"] += 1
    retry_after = decision.headers().get("Retry-After", "1")
    if fault is not None and fault.retry_after_s is not None:
        retry_after = str(fault.retry_after_s)
    body = env.error_body(429, env.RATE_LIMITED, call.rid)
    return Reply(429, body, {"Retry-After": retry_after})


def _context_error(rid: str) -> Reply:
    errors = ["model context limit exceeded"]
    return Reply(400, env.error_body(400, env.INVALID_BODY, rid, errors))


def _subject(call: _Call, req: dict[str, Any]) -> str:
    tid = req.get("transcript_id")
    if isinstance(tid, str):
        return tid
    return "p:" + text_key(json.dumps(messages_of(req), sort_keys=True))


async def _attempt(
    call: _Call,
    req: dict[str, Any],
    info: ModelInfo,
    messages: list[dict[str, Any]],
    source_text: str,
    retry: bool,
) -> Reply:
    """One model: latency, transport faults (with the one server retry), then the answer."""
    state, cfg = call.state, call.state.config
    subject = _subject(call, req)
    tid = req.get("transcript_id") if isinstance(req.get("transcript_id"), str) else None
    for tries_left in (1, 0) if retry else (0,):
        n = state.fault_counts.next(info.id, subject)
        fault = decide(cfg.faults, cfg.seed, info.id, subject, tid, n)
        call.entry.models_tried.append(info.id)
        call.entry.faults.append(fault.kind if fault else None)
        await _latency(call, info.id, subject, n)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(cfg.hang_s)
        if fault is not None and fault.kind == "5xx":
            if tries_left:
                await asyncio.sleep(cfg.retry_delay_s)
                continue
            state.models[info.id].statuses[str(fault.status)] += 1
            message = env.SERVER_MESSAGES.get(fault.status, "upstream model error")
            return Reply(fault.status, env.error_body(fault.status, message, call.rid))
        if fault is not None and fault.kind == "429":
            limit = cfg.limit_for(info.id)
            fake = Decision(False, limit.limit, 0, limit.window_s, info.id)
            return _limited(call, info.id, fake, fault)
        return await _answer(call, req, info, messages, source_text, (subject, fault))
    raise AssertionError("unreachable")  # pragma: no cover


async def _latency(call: _Call, model: str, subject: str, n: int) -> None:
    lat = call.state.config.latency_for(model)
    if lat.ms <= 0 and lat.jitter_ms <= 0:
        return
    spread = (2 * unit(call.state.config.seed, "latency", model, subject, n) - 1) * lat.jitter_ms
    await asyncio.sleep(max(0.0, lat.ms + spread) / 1000)


async def _answer(
    call: _Call,
    req: dict[str, Any],
    info: ModelInfo,
    messages: list[dict[str, Any]],
    source_text: str,
    decided: tuple[str, Fault | None],
) -> Reply:
    subject, fault = decided
    kind = fault.kind if fault is not None else None
    schema_key = text_key(json.dumps(req.get("response_format")))
    parts = (call.state.config.seed, "answer", info.id, subject, schema_key)
    loop = asyncio.get_running_loop()
    try:
        done = await loop.run_in_executor(_ANSWERS, _generate, req, info, source_text, parts, kind)
    except RepairError:
        call.state.models[info.id].statuses["500"] += 1
        errors = [env.REPAIR_ERROR]
        return Reply(500, env.error_body(500, env.REPAIR_FAILED, call.rid, errors))
    stats = call.state.models[info.id]
    stats.statuses["200"] += 1
    stats.answered += 1
    call.entry.model_answered = info.id
    elapsed = time.perf_counter_ns() - call.started_ns
    stream = bool(req.get("stream"))
    # Stream chunks always name a model (gateway-api.md 6.2); only plain bodies omit it.
    omit = not stream and info.family in call.state.config.omit_model_for
    tokens = prompt_tokens(messages)
    cache = call.state.prompt_cache.use(
        call.key, info.id, info.creator, req, messages, prompt_tokens, time.time()
    )
    spent = Spent(tokens, cache, reasoning_tokens(req))
    body = success_body(call.rid, call.body, info, done, spent, elapsed, omit_model=omit)
    options = req.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Reply(200, body, stream=stream, stream_usage=usage)


def _generate(
    req: dict[str, Any],
    info: ModelInfo,
    source_text: str,
    parts: tuple[object, ...],
    kind: str | None,
) -> Completion:
    """The model's completion, repaired when the request asks for JSON (pure: no state)."""
    json_wanted = wants_repair(req)
    done = complete(req, info, analyse(source_text), parts, kind, json_wanted)
    if json_wanted and done.finish != "refusal":
        if done.content is not None:
            done.content = repair(done.content)
        for tool_call in done.tool_calls or []:
            tool_call["function"]["arguments"] = repair(tool_call["function"]["arguments"])
    return done


def _with_headers(call: _Call, reply: Reply, primary: Decision | None) -> Reply:
    """Rate-limit headers describe the primary (requested) model, as the live header did."""
    if primary is None or not call.state.config.rate_limit_enabled:
        return reply
    headers = primary.headers()
    headers.pop("Retry-After", None)
    headers.update(reply.headers)
    reply.headers = headers
    return reply
