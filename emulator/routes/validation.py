"""Up-front request validation, in the order the live gateway reports problems.

Order (gateway-api.md section 10): body shape -> model known in this region -> entitlement ->
per-model supported parameters (and the schema rules of the model's provider,
``schema_rules``) -> ``model_region`` -> ``fallback_config.depth`` -> each fallback
(known, entitled, its merged parameters supported). Every failed check is collected, as the live
``metadata.errors`` lists all of them; the transcript lookup (404) comes after.
"""

from __future__ import annotations

from typing import Any

from emulator.config import EmulatorConfig
from emulator.routes.schema_rules import format_problem, tool_problems
from emulator.world.catalog import ModelInfo

#: Body fields the gateway itself handles; any other field is a model parameter and must be in
#: the model's ``supported_parameters``.
GATEWAY_FIELDS = frozenset(
    {
        "model",
        "messages",
        "prompt",
        "transcript_id",
        "fallbacks",
        "fallback_config",
        "post_processing_steps",
        "model_region",
        "cache_control",
        "prompt_cache_key",
        "prompt_cache_retention",
        "max_tokens",
    }
)
ROLES = ("system", "user", "assistant", "tool")
NO_ACCESS = "Your account does not have access to this LLM Gateway model"
MAX_DEPTH = 2


def merged_attempts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The primary request, then each fallback up to ``depth`` with its overrides applied."""
    base = {k: v for k, v in body.items() if k not in ("fallbacks", "fallback_config")}
    config = body.get("fallback_config") or {}
    depth = config.get("depth", 1) if isinstance(config, dict) else 1
    fallbacks = body.get("fallbacks") or []
    if not isinstance(fallbacks, list) or not isinstance(depth, int):
        return [base]
    return [base] + [base | f for f in fallbacks[: max(0, depth)] if isinstance(f, dict)]


def _messages(body: dict[str, Any], errors: list[str]) -> None:
    messages, prompt = body.get("messages"), body.get("prompt")
    if messages is None and prompt is None:
        errors.append("one of messages or prompt required")
        return
    if prompt is not None and not isinstance(prompt, str):
        errors.append("prompt must be a string")
    if messages is None:
        return
    if not isinstance(messages, list) or not messages:
        errors.append("messages must be a non-empty array of message objects")
        return
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            errors.append(f"messages[{i}].role must be one of {', '.join(ROLES)}")
            continue
        content = msg.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text":
                    errors.append(f"messages[{i}].content[{j}] must be a text part")
        elif content is not None and not isinstance(content, str):
            errors.append(f"messages[{i}].content must be a string or an array of text parts")


def _response_format(value: Any) -> str | None:
    if not isinstance(value, dict) or value.get("type") != "json_schema":
        return "response_format is invalid: type must be json_schema"
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return "response_format is invalid: json_schema.name is required"
    if not isinstance(spec.get("schema"), dict):
        return "response_format is invalid: json_schema.schema must be an object"
    return None


def _model(
    req: dict[str, Any], served: dict[str, ModelInfo], cfg: EmulatorConfig, errors: list[str]
) -> None:
    """Model known, entitled, and every parameter of ``req`` supported by it."""
    model = req.get("model")
    if not isinstance(model, str) or not model:
        errors.append("model is required")
        return
    info = served.get(model)
    if info is None:
        errors.append(f"model {model} is not supported")
        return
    if model in cfg.no_access_models:
        errors.append(NO_ACCESS)
        return
    supported = set(info.supported_parameters)
    for param in req:
        if param not in GATEWAY_FIELDS and param not in supported:
            errors.append(f"model {model} does not support {param}")
    if "response_format" in req and "response_format" in supported:
        problem = _response_format(req["response_format"]) or _provider_format(
            info, req["response_format"]
        )
        if problem:
            errors.append(problem)
    if "tools" in supported:
        errors.extend(tool_problems(info, req.get("tools")))
    _numbers(req, info, errors)


def _provider_format(info: ModelInfo, fmt: dict[str, Any]) -> str | None:
    """A well-formed format the model's provider still refuses (see ``schema_rules``)."""
    spec = fmt["json_schema"]
    problem = format_problem(info, spec["schema"], spec.get("strict") is True)
    return f"response_format is invalid: {problem}" if problem else None


def _numbers(req: dict[str, Any], info: ModelInfo, errors: list[str]) -> None:
    max_tokens = req.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens < info.context_length
    ):
        errors.append(f"max_tokens must be an integer in [1, {info.context_length})")
    temperature = req.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        errors.append("temperature must be between 0 and 2")


def _fallbacks(body: dict[str, Any], errors: list[str]) -> None:
    config = body.get("fallback_config")
    if config is not None:
        depth = config.get("depth", 1) if isinstance(config, dict) else None
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            errors.append("fallback_config depth must be a non-negative integer")
        elif depth > MAX_DEPTH:
            errors.append("fallback_config depth cannot be greater than 2")
        retry = config.get("retry", True) if isinstance(config, dict) else True
        if not isinstance(retry, bool):
            errors.append("fallback_config retry must be a boolean")
    fallbacks = body.get("fallbacks")
    if fallbacks is not None and not isinstance(fallbacks, list):
        errors.append("fallbacks must be an array")
    for i, item in enumerate(fallbacks if isinstance(fallbacks, list) else []):
        if not isinstance(item, dict) or not isinstance(item.get("model"), str):
            errors.append(f"fallbacks[{i}].model is required")


def validate(body: Any, served: dict[str, ModelInfo], cfg: EmulatorConfig) -> list[str]:
    """Every problem with ``body``, in the gateway's order; empty when it may proceed."""
    if not isinstance(body, dict):
        return ["request body must be a JSON object"]
    errors: list[str] = []
    _messages(body, errors)
    _model(body, served, cfg, errors)
    region = body.get("model_region")
    if region is not None and region != "global":
        errors.append("model_region can only be set to global")
    _fallbacks(body, errors)
    base = {k: v for k, v in body.items() if k not in ("fallbacks", "fallback_config")}
    fallbacks = body.get("fallbacks")
    for item in fallbacks if isinstance(fallbacks, list) else []:
        if isinstance(item, dict) and isinstance(item.get("model"), str):
            if "messages" in item or "prompt" in item:
                _messages(base | item, errors)
            _model(base | item, served, cfg, errors)
            override = item.get("model_region")
            if override is not None and override != "global":
                errors.append("model_region can only be set to global")
    steps = body.get("post_processing_steps")
    if steps is not None and (
        not isinstance(steps, list)
        or any(not isinstance(s, dict) or s.get("type") != "json-repair" for s in steps)
    ):
        errors.append("post_processing_steps: the only supported type is json-repair")
    tid = body.get("transcript_id")
    if tid is not None and not isinstance(tid, str):
        errors.append("transcript_id must be a string")
    return list(dict.fromkeys(errors))
