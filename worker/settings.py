"""Typed settings, read once from the environment (``TBATCH_`` prefix).

Nothing else in tbatch reads ``os.environ``: every knob lives here, with its unit in its name.
The defaults are the *embedded* mode (SQLite, a filesystem broker, an in-memory rate limiter),
so ``tbatch demo`` needs no servers; production sets the URLs to Postgres and Redis.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

US_GATEWAY_URL = "https://llm-gateway.assemblyai.com/v1"
EU_GATEWAY_URL = "https://llm-gateway.eu.assemblyai.com/v1"
US_TRANSCRIPT_API_URL = "https://api.assemblyai.com"
EU_TRANSCRIPT_API_URL = "https://api.eu.assemblyai.com"


class Settings(BaseSettings):
    # hide_input_in_errors: a bad value's error never repeats it (it may be the API key).
    # env_file: ./.env when present (.env.example lists every setting); a variable of the real
    # environment wins over the same name in .env.
    model_config = SettingsConfigDict(
        env_prefix="TBATCH_",
        extra="ignore",
        hide_input_in_errors=True,
        env_file=".env",
        env_file_encoding="utf-8",
    )

    # Storage and transport
    database_url: str = "sqlite:///tbatch.sqlite3"
    broker_url: str = "filesystem://"
    broker_folder: str = ".tbatch/broker"
    # Shared counters (rate-limit buckets). Empty: the broker's URL when it is Redis,
    # else an in-memory limiter (embedded mode, one dispatcher).
    redis_url: str = ""

    # Gateway
    gateway_url: str = US_GATEWAY_URL
    gateway_eu_url: str = EU_GATEWAY_URL
    transcript_api_url: str = US_TRANSCRIPT_API_URL
    transcript_api_eu_url: str = EU_TRANSCRIPT_API_URL
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("ASSEMBLYAI_API_KEY", "TBATCH_API_KEY")
    )

    @field_validator("api_key")
    @classmethod
    def _clean_key(cls, key: SecretStr | None) -> SecretStr | None:
        """Surrounding whitespace (a secret mounted from a file ends with a newline) is removed;
        whitespace or control characters inside the key are refused, naming neither the key
        nor its characters: sent as a header, they make the HTTP library raise an error that
        quotes the header's value."""
        if key is None:
            return None
        raw = key.get_secret_value().strip()
        if any(ch.isspace() or not ch.isprintable() for ch in raw):
            raise ValueError(
                "ASSEMBLYAI_API_KEY contains whitespace or control characters inside it; "
                "check how the secret is set (the key itself is not shown)"
            )
        return SecretStr(raw) if raw else None

    gateway_connect_timeout_s: float = 5.0
    gateway_read_timeout_s: float = 120.0
    gateway_write_timeout_s: float = 10.0
    gateway_pool_timeout_s: float = 10.0
    gateway_max_connections: int = 256

    # Rate limits: "model=N/Ws,model2=N/Ws"; models not named get the default.
    rate_limits: str = ""
    default_rate_limit: str = "30/60s"
    rate_limit_pause_cap_s: float = 120.0
    # The send gate (worker/ratelimit/window.py): a permit needs fewer than N sends in the last
    # window + margin; the margin covers the send-to-arrival spread (measured by bench.py).
    send_margin_ms: float = Field(default=50.0, ge=0, le=5000)
    # The dispatcher releases the slots that open within this lead, so a worker has a job in
    # hand when a permit opens; a worker waits at most permit_max_wait_s for one, else the job
    # goes back to pending unsent (no call, no retry spent).
    permit_lead_s: float = Field(default=0.5, ge=0, le=10)
    permit_max_wait_s: float = Field(default=1.0, gt=0, le=10)

    # Retry policy (transport retries and re-asks are separate budgets)
    max_transport_retries: int = 5
    retry_backoff_base_s: float = 2.0
    retry_backoff_max_s: float = 120.0
    max_reasks: int = 2
    # The gateway's own default is 1000 output tokens, which truncates rich analytics.
    default_max_tokens: int = 4000
    # A transcript too long for its model ("model context limit exceeded") is sent on to the
    # largest-context model of its region; overflow_models (comma-separated ids) limits the
    # candidates (empty: any model the region's catalog serves).
    overflow_reroute: bool = True
    overflow_models: str = ""

    @property
    def overflow_candidates(self) -> frozenset[str]:
        return frozenset(m.strip() for m in self.overflow_models.split(",") if m.strip())

    # Reliability
    # A dead worker's job runs again within lease_s + reconcile_interval_s (< 2 minutes).
    lease_s: float = 90.0
    # A problem of the fleet (the key refused, a model missing from the catalog) holds the job
    # in pending this long, and stops this worker (auth) or pauses the model (catalog) as long.
    fleet_hold_s: float = Field(default=60.0, gt=0, le=3600)
    max_deliveries: int = 6
    reconcile_interval_s: float = 15.0
    requeue_after_s: float = 90.0
    # Jobs released to the broker but not yet running, per model, when the model has no limit.
    unlimited_release_ahead: int = 512
    # The canary (worker/services/batch_health.py): a new batch releases this many calls and
    # waits for their verdict before the rest; if all fail for one reason the batch is paused
    # (``tbatch resume``). 0: no canary.
    canary_calls: int = Field(default=5, ge=0, le=1000)
    # Permanent failures in a row with one reason that pause a running batch; 0: never.
    pause_streak: int = Field(default=10, ge=0, le=1_000_000)

    # Cost and caching (worker/pricing.py, worker/caching.py). cache_rates: JSON multipliers of
    # the input price per provider, model id or id prefix, merged over the defaults, e.g.
    # {"anthropic": {"read": 0.1, "write_5m": 1.25}}; region_surcharge: the in-region markup
    # (since 2026-07-01) that model_region "global" avoids; cache_min_tokens: JSON minimum
    # cacheable prefix per model id or id prefix, merged over the table; prompt_caching: mark
    # templates' static prefixes for caching.
    cache_rates: dict[str, dict[str, float]] = Field(default_factory=dict)
    region_surcharge: float = Field(default=0.10, ge=0, le=1)
    cache_min_tokens: dict[str, int] = Field(default_factory=dict)
    prompt_caching: bool = True

    @field_validator("cache_rates")
    @classmethod
    def _check_cache_rates(cls, rates: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for key, fields in rates.items():
            for name, value in fields.items():
                if name not in ("read", "write_5m", "write_1h") or value < 0:
                    raise ValueError(
                        f"TBATCH_CACHE_RATES[{key!r}]: {name!r} must be one of read, write_5m, "
                        "write_1h, with a multiplier >= 0"
                    )
        return rates

    # Worker. Each worker process also runs a dispatcher, a reconciler and a lease heartbeat
    # (threads); several processes on several machines share the work through Postgres/Redis.
    run_background: bool = True
    worker_concurrency: int = 64
    worker_pool: str = "threads"

    # Prometheus metrics of the worker process (0: not served).
    metrics_port: int = 0

    # `tbatch ui`: the bearer token every request must carry when the view binds to anything
    # but 127.0.0.1 (worker/ui/auth.py); without it such a bind is refused.
    ui_token: SecretStr | None = None

    @field_validator("ui_token")
    @classmethod
    def _unset_if_empty(cls, token: SecretStr | None) -> SecretStr | None:
        """``TBATCH_UI_TOKEN=`` (empty, as in .env.example) means no token, not an empty one."""
        return None if token is None or not token.get_secret_value().strip() else token

    # Output
    log_level: str = "INFO"
    log_format: str = "json"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use (never at import)."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
