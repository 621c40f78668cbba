"""Encryption of stored secrets (self-hosted models' API tokens) with `SWITCHBOARD_SECRET_KEY` (SPEC §4).

The key is any string: a Fernet key is derived from it (SHA-256), so operators may set a passphrase or a
generated key. Unset, a random key is generated once into `<data dir>/secret_key` (mode 0600) and read
from there afterwards, as a development instance needs; production sets the variable, the same in every
process. Losing the key loses the stored tokens (re-enter them), nothing else.

The same secret signs (and encrypts) the `/admin` session cookie, through a key derived for that purpose
alone (`session_box`); changing the secret signs everyone out.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from core.settings import Settings

__all__ = ["SecretBox", "secret_box", "session_box"]

log = logging.getLogger(__name__)

_KEY_FILE = "secret_key"


class SecretBox:
    """Encrypts and decrypts short secrets with one key (and `purpose`: boxes for different purposes
    built from the same key cannot open each other's tokens)."""

    def __init__(self, key: str, purpose: str = "") -> None:
        material = f"{purpose}\0{key}" if purpose else key
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(material.encode()).digest()))

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        """The plain text; None when `token` was encrypted with another key (logged, never raised)."""
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            log.warning("a stored secret cannot be decrypted with SWITCHBOARD_SECRET_KEY; re-enter it")
            return None

    def open(self, token: str, *, max_age_s: float, now: float | None = None) -> str | None:
        """The plain text of a token sealed by this box less than `max_age_s` ago (at `now`, default the
        clock); None, silently, when it is forged, another key's, malformed or too old."""
        try:
            return self._fernet.decrypt_at_time(token.encode(), int(max_age_s), int(now if now is not None else time.time())).decode()
        except (InvalidToken, ValueError, UnicodeError):
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


def _key(settings: Settings) -> str:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _generated_key(settings.data_dir)


def secret_box(settings: Settings) -> SecretBox:
    """The box for `settings`: `SWITCHBOARD_SECRET_KEY`, else the key generated into the data directory."""
    return SecretBox(_key(settings))


def session_box(settings: Settings) -> SecretBox:
    """The box that seals session cookies, with a key derived from the same secret for that purpose only.
    Blocking on first use without `SWITCHBOARD_SECRET_KEY` (reads the data directory)."""
    return SecretBox(_key(settings), purpose="session")
