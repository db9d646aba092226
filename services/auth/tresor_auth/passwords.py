"""Argon2id password hashing, with a dummy hash so unknown users cost the same time."""

import asyncio
import os
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tresor_auth.errors import InvalidArgument

MAX_PASSWORD_LENGTH = 1024
# Passwords everyone tries first; refused whatever their length.
_COMMON = {
    "passwordpassword",
    "password1234",
    "123456789012",
    "qwertyuiopas",
    "iloveyou1234",
    "adminadminadmin",
    "letmeinletmein",
    "changemechangeme",
    "welcome12345",
    "passwort1234",
}


class Passwords:
    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, min_length: int
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self.min_length = min_length
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        # Argon2 is deliberately slow: it runs in threads, at most one per core, so that
        # a wave of logins never stalls Authorize on the event loop.
        self._slots = asyncio.Semaphore(os.cpu_count() or 1)

    async def hash_async(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hash, password)

    async def verify_async(self, stored_hash: str | None, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(self.verify, stored_hash, password)

    def check_strength(self, password: str, *, username: str = "") -> None:
        if len(password) < self.min_length:
            raise InvalidArgument(f"password: at least {self.min_length} characters are needed")
        if len(password) > MAX_PASSWORD_LENGTH:
            raise InvalidArgument(f"password: at most {MAX_PASSWORD_LENGTH} characters")
        if len(set(password)) < 5:
            raise InvalidArgument("password: too few different characters")
        lowered = password.lower()
        if lowered in _COMMON:
            raise InvalidArgument("password: too common")
        if username and username.lower() in lowered:
            raise InvalidArgument("password: must not contain the user name")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True only for a match; with no stored hash, burns the same time and says no."""
        if len(password) > MAX_PASSWORD_LENGTH:
            password = password[:MAX_PASSWORD_LENGTH]
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
