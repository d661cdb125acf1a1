"""One call's send gate: the permit taken right before the request leaves, and the answer's
rate-limit headers handed back to the shared limiter (``worker.ratelimit``).

The gateway client calls ``before_send`` after it has built the request and ``answered`` as soon
as an HTTP answer is in, success or error, so every answer the gateway counted reaches the gate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from worker.gateway.types import RateLimitInfo

log = logging.getLogger("tbatch.send_gate")


class PermitPort(Protocol):
    def permit(self, model: str, region: str | None) -> Any: ...

    def written(self, permit: Any) -> float: ...

    def observe(
        self,
        model: str,
        region: str | None,
        sent_at_s: float | None,
        info: RateLimitInfo,
        *,
        probe: bool = True,
    ) -> None: ...


@dataclass
class CallGate:
    limiter: PermitPort
    model: str
    region: str
    # When the request was written (an upper bound; the limiter's clock, epoch seconds).
    sent_at_s: float | None = None
    permit: Any = None

    def before_send(self) -> None:
        self.permit = self.limiter.permit(self.model, self.region)

    def written(self) -> None:
        if self.permit is None:  # an unlimited model: no permit to confirm
            self.sent_at_s = time.time()
            return
        try:
            self.sent_at_s = self.limiter.written(self.permit)
        except Exception as exc:  # unconfirmed, the send stays held: safe, only slower
            self.sent_at_s = self.permit.at_s
            log.warning(
                "send_gate.confirm_failed",
                extra={"model": self.model, "region": self.region, "error": repr(exc)},
            )

    def answered(self, info: RateLimitInfo) -> None:
        try:
            # Only a probe's answer seeds the lane; any other is checked for a lower limit only
            # (no store round trip per answer). No permit (an unlimited model), or headers of
            # another model's lane (a fallback answered): observed as a probe's.
            probe = bool(getattr(self.permit, "probe", True))
            probe = probe or (info.model is not None and info.model != self.model)
            self.limiter.observe(self.model, self.region, self.sent_at_s, info, probe=probe)
        except Exception as exc:  # the answer is paid for: a limiter outage must not lose it
            log.warning(
                "send_gate.observe_failed",
                extra={"model": self.model, "region": self.region, "error": repr(exc)},
            )

    @property
    def sent_at(self) -> datetime | None:
        if self.sent_at_s is None:
            return None
        return datetime.fromtimestamp(self.sent_at_s, tz=UTC)
