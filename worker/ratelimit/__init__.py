"""Per-model rate limiting of gateway calls, shared by every dispatcher and worker.

``window`` is the pure send-gate arithmetic (a sliding log of sends, reservations, trust);
``backend`` the storage contract, met by ``memory_backend`` (embedded mode) and ``redis_backend``
(shared, one Lua script per operation); ``config`` parses the limits from settings;
``limiter.ModelLimiter`` is what the dispatcher and the workers call.
"""

from worker.ratelimit.backend import GateSnapshot, Grant, Permit, RateLimitBackend
from worker.ratelimit.config import Limit, RateLimitConfig
from worker.ratelimit.limiter import GateTiming, ModelLimiter
from worker.ratelimit.window import GateParams, LaneState

__all__ = [
    "GateParams",
    "GateSnapshot",
    "GateTiming",
    "Grant",
    "LaneState",
    "Limit",
    "ModelLimiter",
    "Permit",
    "RateLimitBackend",
    "RateLimitConfig",
]
