"""Sign-in throttling: failed attempts counted per account and per client address.

Redis keys (TTL = the window, LOGIN_FAILURE_WINDOW_MINUTES):
  lms:auth:fail:acct:<sha256 of the email>   failures for one account (LOGIN_MAX_FAILURES)
  lms:auth:fail:ip:<address>                 failures from one address (10x as many: a
                                             classroom behind one NAT shares an address)
Unknown emails are counted exactly like known ones, so the counters reveal nothing.
"""

from __future__ import annotations

from lms_live.core.errors import RateLimited
from lms_live.core.redis import KeyValueStore
from lms_live.core.security import sha256_hex
from lms_live.settings import Settings

IP_FACTOR = 10


class LoginThrottle:
    """Refuses sign-in attempts after too many failures; 429 with Retry-After."""

    def __init__(self, kv: KeyValueStore, settings: Settings) -> None:
        self.kv = kv
        self.window = settings.login_failure_window_minutes * 60.0
        self.max_account = settings.login_max_failures
        self.max_ip = settings.login_max_failures * IP_FACTOR

    def _keys(self, email: str, ip: str) -> tuple[str, str]:
        return (
            f"lms:auth:fail:acct:{sha256_hex(email.strip().lower())}",
            f"lms:auth:fail:ip:{ip}",
        )

    async def check(self, email: str, ip: str) -> None:
        """Raise RateLimited when the account or the address is over its limit."""
        account, address = self._keys(email, ip)
        counts = await self.kv.mget([account, address])
        for key, value, limit in (
            (account, counts[0], self.max_account),
            (address, counts[1], self.max_ip),
        ):
            if value is not None and int(value) >= limit:
                left = await self.kv.ttl(key) or self.window
                raise RateLimited(left, "Too many failed sign-in attempts; try again later.")

    async def failed(self, email: str, ip: str) -> None:
        for key in self._keys(email, ip):
            await self.kv.incr(key, ttl=self.window)

    async def succeeded(self, email: str) -> None:
        await self.kv.delete(self._keys(email, "-")[0])
