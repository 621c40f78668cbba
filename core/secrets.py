"""Encryption of stored secrets (self-hosted models' API tokens) with `SWITCHBOARD_SECRET_KEY` (SPEC §4).

The key is any string: a Fernet key is derived from it (SHA-256), so operators may set a passphrase or a
generated key. Unset, a random key is generated once into `<data dir>/secret_key` (mode 0600) and read
from there afterwards, as a development instance needs; production sets the variable, the same in every
process. Losing the key loses the stored tokens (re-enter them), nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.settings import Settings

__all__ = ["SecretBox", "secret_box"]

log = logging.getLogger(__name__)

_KEY_FILE = "secret_key"


class SecretBox:
    """Encrypts and decrypts short secrets with one key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        """The plain text; None when `token` was encrypted with another key (logged, never raised)."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            log.warning("a stored secret cannot be decrypted with SWITCHBOARD_SECRET_KEY; re-enter it")
            return None


def _generated_key(data_dir: Path) -> str:
    """The key in `data_dir`, generated on first use. Written whole to a private file and then linked into
    place, so that processes starting together all end up with the first one's key."""
    path = data_dir / _KEY_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".{_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(32))
    try:
        os.link(draft, path)
        log.info("generated SWITCHBOARD_SECRET_KEY into %s", path)
    except FileExistsError:  # another process was first: use its key
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()


def secret_box(settings: Settings) -> SecretBox:
    """The box for `settings`: `SWITCHBOARD_SECRET_KEY`, else the key generated into the data directory."""
    if settings.secret_key is not None:
        return SecretBox(settings.secret_key.get_secret_value())
    return SecretBox(_generated_key(settings.data_dir))
