"""When and how long to wait before trying a registry request again.

Registries and the proxies in front of them fail transiently (502 during a deploy, 429 when rate
limited, a reset connection), so idempotent requests are retried with exponential backoff and
jitter, honouring ``Retry-After``, within a total time budget so a push that cannot succeed still
fails in bounded time. Which requests are safe to repeat is the caller's decision: uploads are
retried as a whole by the pusher, never request by request (oci.md 4.2, ggcr ``write.go``).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

log = logging.getLogger("jib.registry")

#: Statuses worth another try: timeouts, rate limits and gateway/server failures (ggcr's set,
#: minus the vendor-specific 499/522).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all, waiting ``base * 2**n`` (at most ``cap``) seconds with jitter
    between them, and never retrying once ``total`` seconds have passed since the first try."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 10.0
    total: float = 120.0
    # Injectable so tests can run a whole retry sequence without waiting.
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)

    def backoff(self, failures: int) -> float:
        """The wait after the ``failures``-th failure: exponential, capped, "equal jitter"
        (half fixed, half random) so concurrent clients do not retry in lockstep."""
        delay = min(self.cap, self.base * 2 ** max(failures - 1, 0))
        return delay / 2 + random.uniform(0, delay / 2)

    def start(self, what: str) -> Attempts:
        """Bookkeeping for one operation's attempts; ``what`` names it in the debug log."""
        return Attempts(self, what)


NO_RETRY = RetryPolicy(attempts=1)


class Attempts:
    """The attempts made at one operation so far, and the decision whether to make another."""

    def __init__(self, policy: RetryPolicy, what: str) -> None:
        self.policy = policy
        self.what = what
        self.failures = 0
        self.started = policy.clock()
        self.gave_up: str | None = None

    @property
    def elapsed(self) -> float:
        return self.policy.clock() - self.started

    def retry(self, reason: str, retry_after: float | None = None) -> bool:
        """Record a failed attempt; wait and return True if another is allowed, else False."""
        self.failures += 1
        policy = self.policy
        if self.failures >= policy.attempts:
            if policy.attempts > 1:
                self.gave_up = f"gave up after {self.failures} attempts in {self.elapsed:.0f} s"
            return False
        delay = policy.backoff(self.failures) if retry_after is None else max(retry_after, 0.0)
        remaining = policy.total - self.elapsed
        if delay > remaining:
            asked = f"the registry asked to wait {delay:.0f} s; " if retry_after else ""
            self.gave_up = (
                f"{asked}gave up after {self.failures} attempt{'s' * (self.failures > 1)} "
                f"in {self.elapsed:.0f} s (retry budget {policy.total:.0f} s)"
            )
            return False
        log.debug(
            "%s: %s; retrying in %.1f s (attempt %d of %d)",
            self.what,
            reason,
            delay,
            self.failures + 1,
            policy.attempts,
        )
        policy.sleep(delay)
        return True


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds from now: delta-seconds or an HTTP-date (RFC 9110 10.2.3).

    None when absent or unparseable (the caller then uses its own backoff); never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT; be lenient with ones that omit it
        when = when.replace(tzinfo=timezone.utc)
    current = now or datetime.now(timezone.utc)
    return max((when - current).total_seconds(), 0.0)
