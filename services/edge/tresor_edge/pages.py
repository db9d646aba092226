"""The gate's pages in German (the default) and English."""

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

TEXTS: dict[str, dict[str, str]] = {
    "de": {
        "title": "Anmelden",
        "heading": "Bei Tresor anmelden",
        "tenant": "Mandant",
        "username": "Benutzername",
        "password": "Passwort",
        "submit": "Anmelden",
        "note": "Die Sitzung gilt nur in diesem Browser und von diesem Netzwerk aus.",
        "invalid": "Die Anmeldung ist fehlgeschlagen. Bitte prüfen Sie Ihre Angaben.",
        "locked": "Zu viele Fehlversuche. Bitte versuchen Sie es in {minutes} Minuten erneut.",
        "unavailable": "Die Anmeldung ist gerade nicht möglich. Bitte versuchen Sie es gleich "
        "noch einmal.",
        "expired_form": "Das Formular ist abgelaufen. Bitte melden Sie sich erneut an.",
        "logout_refused": "Die Abmeldung wurde abgelehnt.",
        "logout_refused_text": "Bitte nutzen Sie die Schaltfläche „Abmelden“ in Tresor.",
        "not_found": "Seite nicht gefunden",
        "not_found_text": "Diese Adresse gibt es nicht.",
        "to_login": "Zur Anmeldung",
    },
    "en": {
        "title": "Sign in",
        "heading": "Sign in to Tresor",
        "tenant": "Tenant",
        "username": "User name",
        "password": "Password",
        "submit": "Sign in",
        "note": "The session is valid only in this browser and from this network.",
        "invalid": "Sign-in failed. Please check what you entered.",
        "locked": "Too many failed attempts. Please try again in {minutes} minutes.",
        "unavailable": "Signing in is not possible right now. Please try again shortly.",
        "expired_form": "The form has expired. Please sign in again.",
        "logout_refused": "Sign-out was refused.",
        "logout_refused_text": "Please use the “Sign out” button in Tresor.",
        "not_found": "Page not found",
        "not_found_text": "This address does not exist.",
        "to_login": "To sign-in",
    },
}
DEFAULT_LANGUAGE = "de"


def language(query_value: str | None, accept_language: str | None) -> str:
    """An explicit choice first, then the browser's first supported language, else German."""
    if query_value in TEXTS:
        return str(query_value)
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in TEXTS:
            return code
    return DEFAULT_LANGUAGE


class Pages:
    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(Path(__file__).parent / "templates"),
            autoescape=select_autoescape(["html"]),
            auto_reload=False,
        )

    def render(self, template: str, lang: str, **context: Any) -> str:
        return self._env.get_template(template).render(lang=lang, t=TEXTS[lang], **context)
