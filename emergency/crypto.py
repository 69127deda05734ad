"""Field encryption for sensitive plan details: Fernet via `cryptography`.

`PLAN_ENCRYPTION_KEYS` is a list of Fernet keys, newest first. MultiFernet encrypts with
the newest and decrypts with any, so a new key can be added in front, `flask emergency
rotate-keys` run, and then the old key removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class FieldCipher:
    """Encrypts and decrypts text and JSON values with the configured keys."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("PLAN_ENCRYPTION_KEYS is empty: at least one Fernet key is needed.")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "A plan field could not be decrypted: is its key still in PLAN_ENCRYPTION_KEYS?"
            ) from exc

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, sort_keys=True, default=str))

    def decrypt_json(self, token: str) -> Any:
        return json.loads(self.decrypt(token))

    def rotate(self, token: str) -> str:
        """Re-encrypt `token` under the newest key (what `rotate-keys` does to each field)."""
        return self._fernet.rotate(token.encode()).decode()


def cipher_from_config(config: Any) -> FieldCipher:
    """Build the cipher from the app config (callers pass `current_app.config`)."""
    return FieldCipher(list(config["PLAN_ENCRYPTION_KEYS"]))
