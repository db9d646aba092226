"""CSRF tokens for the gate's forms.

Login (no session yet): a random value in a `__Host-` cookie, and in the form
its HMAC; both must arrive together. Logout and every other form inside a
session: HMAC of the session id, handed upstream in the signed identity.
"""

import hashlib
import hmac
import secrets

LOGIN_COOKIE = "__Host-tresor_csrf"


class CsrfTokens:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"tresor-csrf:" + secret.encode()).digest()

    def _mac(self, purpose: str, value: str) -> str:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def new_login_nonce() -> str:
        return secrets.token_urlsafe(32)

    def login_token(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_ok(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token:
            return False
        return hmac.compare_digest(self.login_token(nonce), token)

    def session_token(self, session_id: str) -> str:
        return self._mac("session", session_id)

    def session_ok(self, session_id: str, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(self.session_token(session_id), token)
