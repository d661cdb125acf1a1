"""Per-model rate limiting of gateway calls, shared by every dispatcher.

``bucket`` is the pure token-bucket maths; ``backend`` the storage contract, met by
``memory_backend`` (embedded mode) and ``redis_backend`` (shared, one Lua script per write);
``config`` parses the limits from settings; ``limiter.ModelLimiter`` is what the dispatcher calls.
"""

from worker.ratelimit.backend import BucketSnapshot, Grant, RateLimitBackend
from worker.ratelimit.bucket import BucketParams, BucketState, params_for_limit
from worker.ratelimit.config import Limit, RateLimitConfig
from worker.ratelimit.limiter import ModelLimiter

__all__ = [
    "BucketParams",
    "BucketSnapshot",
    "BucketState",
    "Grant",
    "Limit",
    "ModelLimiter",
    "RateLimitBackend",
    "RateLimitConfig",
    "params_for_limit",
]
