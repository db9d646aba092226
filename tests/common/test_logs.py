"""No secret reaches a log line: link tokens, cookies, passwords and bearer tokens are redacted."""

import io
import json
import logging

from tresor_common.logs import REDACTED, JsonFormatter, redact

LINK = "q5TBk3s0H7bVwz1bRk5iXb9cZl3nN0aP"


def _log_line(message: str, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("tresor.test.redaction")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(message, extra=extra)
    line: dict[str, object] = json.loads(stream.getvalue())
    return line


def test_link_token_in_a_path_is_redacted() -> None:
    line = _log_line(f"GET /s/{LINK}/contacts/17", path=f"/s/{LINK}/contacts")
    assert LINK not in json.dumps(line)
    assert line["message"] == f"GET /s/{REDACTED}/contacts/17"
    assert line["path"] == f"/s/{REDACTED}/contacts"


def test_secret_fields_are_redacted_by_name() -> None:
    line = _log_line(
        "login", password="hunter2-hunter2", cookie_secret="abc", link_token=LINK, user="alice"
    )
    assert line["password"] == REDACTED
    assert line["cookie_secret"] == REDACTED
    assert line["link_token"] == REDACTED
    assert line["user"] == "alice"


def test_secrets_inside_messages_are_redacted() -> None:
    for text, secret in [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("cookie: __Host-tresor_sid=s3cr3tvalue; other=1", "s3cr3tvalue"),
        ('{"password": "p4ss w0rd"}', "w0rd"),
        ("token=ZZZtopsecretZZZ&x=1", "ZZZtopsecretZZZ"),
    ]:
        line = _log_line(text)
        assert secret not in json.dumps(line), text


def test_nested_values_are_redacted() -> None:
    cleaned = redact({"request": {"headers": {"Authorization": "Bearer x"}, "path": f"/s/{LINK}/"}})
    assert cleaned == {
        "request": {"headers": {"Authorization": REDACTED}, "path": f"/s/{REDACTED}/"}
    }


def test_exceptions_are_redacted_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("tresor.test.redaction.exc")
    logger.handlers[:] = [handler]
    logger.propagate = False
    try:
        raise ValueError(f"bad path /s/{LINK}/x")
    except ValueError:
        logger.exception("failed")
    assert LINK not in stream.getvalue()
