"""Chunked AEAD: truncation, reordering, swapping and a wrong key are all detected."""

import base64
import io
import os
from pathlib import Path

import pytest

from tresor_backup import crypto
from tresor_backup.config import BackupSettings
from tresor_common.settings import SettingsError, load_settings


def _seal(data: bytes, key: bytes, part: str = "crm.dump.zst.enc") -> bytes:
    out = io.BytesIO()
    writer = crypto.EncryptingWriter(out, key, part)
    writer.write(data)
    writer.close()
    return out.getvalue()


def _chunks(sealed: bytes) -> tuple[bytes, list[bytes]]:
    header, rest = sealed[:16], sealed[16:]
    chunks = []
    while rest:
        length = int.from_bytes(rest[:4], "big")
        chunks.append(rest[: 4 + length])
        rest = rest[4 + length :]
    return header, chunks


def _open(sealed: bytes, key: bytes, part: str = "crm.dump.zst.enc") -> bytes:
    return b"".join(crypto.decrypt_chunks(io.BytesIO(sealed), key, part))


def test_round_trip_over_several_chunks() -> None:
    key = crypto.new_data_key()
    data = os.urandom(crypto.CHUNK_SIZE * 2 + 123)
    sealed = _seal(data, key)
    assert len(_chunks(sealed)[1]) == 3
    assert _open(sealed, key) == data


def test_empty_part_round_trips() -> None:
    key = crypto.new_data_key()
    assert _open(_seal(b"", key), key) == b""


@pytest.mark.parametrize("attack", ["drop-last", "reorder", "other-part", "wrong-key", "append"])
def test_tampering_is_detected(attack: str) -> None:
    key = crypto.new_data_key()
    header, chunks = _chunks(_seal(os.urandom(crypto.CHUNK_SIZE * 2 + 5), key))
    part = "crm.dump.zst.enc"
    if attack == "drop-last":
        sealed = header + b"".join(chunks[:-1])
    elif attack == "reorder":
        sealed = header + chunks[1] + chunks[0] + chunks[2]
    elif attack == "append":
        sealed = header + b"".join(chunks) + chunks[0]
    else:
        sealed = header + b"".join(chunks)
        if attack == "other-part":
            part = "auth.dump.zst.enc"
        else:
            key = crypto.new_data_key()
    with pytest.raises(crypto.CryptoError, match=part):
        _open(sealed, key, part)


def test_wrapped_key_opens_only_with_the_operator_key() -> None:
    operator, data_key = os.urandom(32), crypto.new_data_key()
    wrapped = crypto.wrap_key(operator, data_key, "s1")
    assert crypto.unwrap_key(operator, wrapped, "s1") == data_key
    with pytest.raises(crypto.CryptoError, match="wrong key"):
        crypto.unwrap_key(os.urandom(32), wrapped, "s1")
    with pytest.raises(crypto.CryptoError, match="wrong key"):
        crypto.unwrap_key(operator, wrapped, "s2")


def test_the_key_comes_from_a_file_and_a_bad_key_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    key_file = tmp_path / "key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    monkeypatch.setenv("TRESOR_BACKUP_AUTH_DATABASE_URL", "postgresql://localhost/auth")
    monkeypatch.setenv("TRESOR_BACKUP_CRM_DATABASE_URL", "postgresql://localhost/crm")
    monkeypatch.setenv("TRESOR_BACKUP_KEY_FILE", str(key_file))
    assert load_settings(BackupSettings).operator_key() == key

    monkeypatch.delenv("TRESOR_BACKUP_KEY_FILE")
    monkeypatch.setenv("TRESOR_BACKUP_KEY", base64.b64encode(os.urandom(16)).decode())
    with pytest.raises(SettingsError, match="TRESOR_BACKUP_KEY"):
        load_settings(BackupSettings)
