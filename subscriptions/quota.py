"""How many subscriptions each user holds on this web process, against `max_subscriptions_per_user`.

A socket is capped at 1,000 subscriptions by the GraphQL view; this caps a user across all their sockets,
so that opening more sockets does not multiply what one user may hold.
"""

from __future__ import annotations

from collections import Counter

from core.errors import InvalidInput

__all__ = ["SubscriptionQuota", "QUOTA"]


class SubscriptionQuota:
    def __init__(self) -> None:
        self._held: Counter[int] = Counter()

    def held(self, user_id: int) -> int:
        return self._held[user_id]

    def take(self, user_id: int, limit: int) -> None:
        """One more subscription of `user_id` (give it back with `release`); InvalidInput when they hold `limit`."""
        if self._held[user_id] >= limit:
            raise InvalidInput(None, f"Too many subscriptions: at most {limit} at once per user")
        self._held[user_id] += 1

    def release(self, user_id: int) -> None:
        self._held[user_id] -= 1
        if self._held[user_id] <= 0:
            del self._held[user_id]


QUOTA = SubscriptionQuota()  # this process's: the limit is per web process
