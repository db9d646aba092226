"""Brute-force protection for Login: slow down, then lock, per user name and per address."""

from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    slowdown_after: int
    slowdown_step_seconds: float
    slowdown_max_seconds: float
    lockout_after: int
    lockout_seconds: int
    address_lockout_after: int

    def locked(self, user_failures: int, address_failures: int) -> bool:
        return user_failures >= self.lockout_after or address_failures >= self.address_lockout_after

    def user_locked(self, user_failures: int) -> bool:
        return user_failures >= self.lockout_after

    def address_locked(self, address_failures: int) -> bool:
        return address_failures >= self.address_lockout_after

    def delay(self, user_failures: int, address_failures: int) -> float:
        """Seconds to wait before answering, growing with each failure past the threshold."""
        excess = max(user_failures, address_failures) - self.slowdown_after + 1
        if excess <= 0:
            return 0.0
        return min(self.slowdown_max_seconds, excess * self.slowdown_step_seconds)
