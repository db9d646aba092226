"""Reading rendered pages: links, form actions, fields, and where they point."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

from tests.crm.harness import TenantClient

# Attributes that make a browser load or go somewhere.
_URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcset", "poster", "data"}


@dataclass
class Page(HTMLParser):
    urls: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, url)
    inputs: dict[str, str] = field(default_factory=dict)
    styles: list[str] = field(default_factory=list)  # inline style attributes
    inline_scripts: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    _in_script: bool = False
    _error_for: str | None = None

    def __post_init__(self) -> None:
        HTMLParser.__init__(self, convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name, value in values.items():
            if name in _URL_ATTRIBUTES:
                self.urls.append((tag, name, value))
            if name == "style":
                self.styles.append(value)
            if name.startswith("on"):
                self.styles.append(f"{name}={value}")  # inline event handlers count as inline code
        if tag == "script":
            self._in_script = "src" not in values
        if tag in ("input", "textarea", "select") and "name" in values:
            self.inputs.setdefault(values["name"], values.get("value", ""))
        if tag == "p" and "field-error" in values.get("class", ""):
            self._error_for = values.get("id", "").removesuffix("-error")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        if tag == "p":
            self._error_for = None

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1
        if self._error_for:
            self.errors[self._error_for] = self.errors.get(self._error_for, "") + data.strip()


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_links_stay_under_prefix(response: httpx.Response, who: TenantClient) -> Page:
    """Every link, resource and form of the page starts with the session's prefix."""
    page = parse(response.text)
    prefix = f"/s/{who.link}/"
    for tag, attribute, url in page.urls:
        if url.startswith("#"):
            continue  # a place on the same page
        if tag == "a" and attribute == "href" and url.startswith(("mailto:", "tel:")):
            continue  # hands the address to the user's own mail or phone app, loads nothing
        assert url.startswith(prefix), f"<{tag} {attribute}={url!r}> leaves the session's prefix"
        assert "//" not in url, f"<{tag} {attribute}={url!r}> could name another origin"
    assert not page.styles, f"inline styles or handlers break the CSP: {page.styles}"
    assert page.inline_scripts == 0, "inline scripts break the CSP"
    return page
