"""The web UI's words in German (the default) and English.

Templates get the texts of the user's language as `t` and look words up as
`t.contacts`. A word missing in English falls back to German, a word missing
everywhere shows its own key, so a forgotten translation never breaks a page.
"""

from collections.abc import Mapping
from typing import Literal

Language = Literal["de", "en"]
LANGUAGES: tuple[Language, ...] = ("de", "en")
DEFAULT_LANGUAGE: Language = "de"
LANGUAGE_NAMES: Mapping[Language, str] = {"de": "Deutsch", "en": "English"}

_DE: dict[str, str] = {
    # layout
    "app": "Tresor",
    "skip": "Zum Inhalt springen",
    "nav_label": "Hauptnavigation",
    "dashboard": "Übersicht",
    "contacts": "Kontakte",
    "companies": "Firmen",
    "deals": "Deals",
    "transfer": "Import/Export",
    "admin": "Administration",
    "logout": "Abmelden",
    "signed_in_as": "Angemeldet als",
    "language": "Sprache",
    "apply": "Übernehmen",
    # lists
    "search": "Suche",
    "search_hint": "Name, E-Mail, Telefon, Firma, Tag …",
    "search_button": "Suchen",
    "tag": "Tag",
    "all_tags": "alle",
    "sort": "Sortierung",
    "sort_name": "Name",
    "sort_created_at": "Erstellt",
    "sort_updated_at": "Geändert",
    "order_asc": "aufsteigend",
    "order_desc": "absteigend",
    "next_page": "Nächste Seite",
    "first_page": "Erste Seite",
    "no_results": "Keine Einträge gefunden.",
    "deleted_view": "Gelöschte",
    "active_view": "Aktuelle",
    "new_contact": "Neuer Kontakt",
    "new_company": "Neue Firma",
    "name": "Name",
    "updated": "Geändert",
    "restore": "Wiederherstellen",
    "deleted_at": "Gelöscht am",
    "contact_deleted": "Der Kontakt wurde gelöscht.",
    "company_deleted": "Die Firma wurde gelöscht.",
    "undo": "Rückgängig",
    "restored": "Wiederhergestellt.",
    "saved": "Gespeichert.",
    # record fields
    "first_name": "Vorname",
    "last_name": "Nachname",
    "company_id": "Firma",
    "company_name": "Firma",
    "no_company": "— keine —",
    "emails": "E-Mail-Adressen",
    "emails_hint": "eine pro Zeile",
    "phones": "Telefonnummern",
    "phones_hint": "eine pro Zeile",
    "position": "Position",
    "street": "Straße",
    "postal_code": "PLZ",
    "city": "Ort",
    "country": "Land",
    "tags": "Tags",
    "tags_hint": "durch Kommas getrennt",
    "owner_id": "Verantwortlich",
    "consent": "Einwilligung zur Kontaktaufnahme",
    "consent_at": "Einwilligung am",
    "custom": "Eigene Felder",
    "website": "Website",
    "industry": "Branche",
    "phone": "Telefon",
    "deleted": "Gelöscht",
    "version": "Version",
    "yes": "ja",
    "no": "nein",
    "address": "Adresse",
    "details": "Angaben",
    "created": "Erstellt",
    # record pages
    "edit": "Bearbeiten",
    "delete": "Löschen",
    "save": "Speichern",
    "cancel": "Abbrechen",
    "create": "Anlegen",
    "edit_contact": "Kontakt bearbeiten",
    "edit_company": "Firma bearbeiten",
    "history": "Änderungen",
    "history_empty": "Noch keine Änderungen.",
    "when": "Wann",
    "who": "Wer",
    "field": "Feld",
    "old_value": "Vorher",
    "new_value": "Nachher",
    "company_contacts": "Kontakte dieser Firma",
    "form_invalid": "Bitte prüfen Sie die markierten Felder.",
    "conflict": (
        "Jemand anderes hat diesen Eintrag inzwischen geändert. Unten sehen Sie den aktuellen "
        "Stand; Ihre Änderungen wurden nicht gespeichert."
    ),
    "your_input": "Ihre Eingabe",
    "required": "Pflichtfeld",
    # dashboard
    "welcome": "Willkommen",
    "recent_changes": "Letzte Änderungen",
    "no_changes": "Noch keine Änderungen.",
    "record_contact": "Kontakt",
    "record_company": "Firma",
    "changed_fields": "geänderte Felder",
    # errors
    "error_404": "Nicht gefunden",
    "error_404_text": "Diese Seite oder dieser Eintrag existiert nicht (mehr).",
    "error_401": "Nicht angemeldet",
    "error_401_text": "Ihre Sitzung ist abgelaufen oder ungültig. Bitte melden Sie sich neu an.",
    "error_403": "Nicht erlaubt",
    "error_403_text": "Diese Aktion ist Ihnen nicht erlaubt.",
    "error_csrf_text": (
        "Das Formular war nicht mehr gültig. Bitte laden Sie die Seite neu und versuchen Sie es "
        "noch einmal."
    ),
    "error_409": "Bearbeitungskonflikt",
    "error_409_text": "Jemand anderes hat diesen Eintrag inzwischen geändert. Bitte neu laden.",
    "error_413": "Zu groß",
    "error_413_text": "Die gesendeten Daten sind zu groß.",
    "error_422": "Ungültige Eingabe",
    "error_422_text": "Die Anfrage enthielt ungültige Angaben.",
    "error_500": "Etwas ist schiefgegangen",
    "error_500_text": "Ein unerwarteter Fehler ist aufgetreten. Er wurde protokolliert.",
    "error_503": "Vorübergehend nicht verfügbar",
    "error_503_text": (
        "Der Dienst ist gerade nicht erreichbar. Bitte versuchen Sie es gleich noch einmal."
    ),
    "back_to_dashboard": "Zur Übersicht",
    "to_login": "Zur Anmeldung",
}

_EN: dict[str, str] = {
    "skip": "Skip to content",
    "nav_label": "Main navigation",
    "dashboard": "Dashboard",
    "contacts": "Contacts",
    "companies": "Companies",
    "admin": "Administration",
    "logout": "Log out",
    "signed_in_as": "Signed in as",
    "language": "Language",
    "apply": "Apply",
    "search": "Search",
    "search_hint": "Name, e-mail, phone, company, tag …",
    "search_button": "Search",
    "all_tags": "all",
    "sort": "Sort by",
    "sort_name": "Name",
    "sort_created_at": "Created",
    "sort_updated_at": "Updated",
    "order_asc": "ascending",
    "order_desc": "descending",
    "next_page": "Next page",
    "first_page": "First page",
    "no_results": "Nothing found.",
    "deleted_view": "Deleted",
    "active_view": "Current",
    "new_contact": "New contact",
    "new_company": "New company",
    "name": "Name",
    "updated": "Updated",
    "restore": "Restore",
    "deleted_at": "Deleted at",
    "contact_deleted": "The contact was deleted.",
    "company_deleted": "The company was deleted.",
    "undo": "Undo",
    "restored": "Restored.",
    "saved": "Saved.",
    "first_name": "First name",
    "last_name": "Last name",
    "company_id": "Company",
    "company_name": "Company",
    "no_company": "— none —",
    "emails": "E-mail addresses",
    "emails_hint": "one per line",
    "phones": "Phone numbers",
    "phones_hint": "one per line",
    "position": "Position",
    "street": "Street",
    "postal_code": "Postal code",
    "city": "City",
    "country": "Country",
    "tags": "Tags",
    "tags_hint": "separated by commas",
    "owner_id": "Owner",
    "consent": "Consent to be contacted",
    "consent_at": "Consent given on",
    "custom": "Custom fields",
    "website": "Website",
    "industry": "Industry",
    "phone": "Phone",
    "deleted": "Deleted",
    "version": "Version",
    "yes": "yes",
    "no": "no",
    "address": "Address",
    "details": "Details",
    "created": "Created",
    "edit": "Edit",
    "delete": "Delete",
    "save": "Save",
    "cancel": "Cancel",
    "create": "Create",
    "edit_contact": "Edit contact",
    "edit_company": "Edit company",
    "history": "Changes",
    "history_empty": "No changes yet.",
    "when": "When",
    "who": "Who",
    "field": "Field",
    "old_value": "Before",
    "new_value": "After",
    "company_contacts": "Contacts of this company",
    "form_invalid": "Please check the marked fields.",
    "conflict": (
        "Someone else changed this record meanwhile. Below you see its current state; your "
        "changes were not saved."
    ),
    "your_input": "Your input",
    "required": "required",
    "welcome": "Welcome",
    "recent_changes": "Recent changes",
    "no_changes": "No changes yet.",
    "record_contact": "Contact",
    "record_company": "Company",
    "changed_fields": "changed fields",
    "error_404": "Not found",
    "error_404_text": "This page or record does not exist (any more).",
    "error_401": "Not signed in",
    "error_401_text": "Your session has ended or is not valid. Please sign in again.",
    "error_403": "Not allowed",
    "error_403_text": "You are not allowed to do this.",
    "error_csrf_text": "The form was no longer valid. Please reload the page and try again.",
    "error_409": "Edit conflict",
    "error_409_text": "Someone else changed this record meanwhile. Please reload.",
    "error_413": "Too large",
    "error_413_text": "What was sent is too large.",
    "error_422": "Invalid input",
    "error_422_text": "The request contained invalid values.",
    "error_500": "Something went wrong",
    "error_500_text": "An unexpected error happened. It has been logged.",
    "error_503": "Temporarily unavailable",
    "error_503_text": "The service cannot be reached right now. Please try again shortly.",
    "back_to_dashboard": "To the dashboard",
    "to_login": "To the login",
}


class Texts(dict[str, str]):
    """Words of one language; `t.key` and `t["key"]` both work in templates."""

    def __getattr__(self, key: str) -> str:
        return self[key]

    def __missing__(self, key: str) -> str:
        return key


_TEXTS: dict[Language, Texts] = {
    "de": Texts(_DE),
    "en": Texts({**_DE, **_EN}),
}


def language(value: str | None) -> Language:
    """A supported language, else the default."""
    for lang in LANGUAGES:
        if value == lang:
            return lang
    return DEFAULT_LANGUAGE


def texts(lang: str | None) -> Texts:
    return _TEXTS[language(lang)]


def add_texts(lang: Language, words: Mapping[str, str]) -> None:
    """Other areas add their own words at import time (keys should carry the area's prefix)."""
    _TEXTS[lang].update(words)
    if lang == DEFAULT_LANGUAGE:
        for other in LANGUAGES:
            if other != lang:
                for key, value in words.items():
                    _TEXTS[other].setdefault(key, value)
