"""Decrypting an environment's secrets just before its container is created.

Each plaintext is registered with the log redactor at once, scoped to its sandbox, so it cannot
appear in a log line of that sandbox's operations, and it is handed only to Docker (as an
environment variable of the container).
"""

from __future__ import annotations

import uuid

from sbx_common.crypto import DecryptionFailed, SealedSecret, SecretBox, secret_binding
from sbx_common.logging import register_secret

from sbx_orchestrator.config import OrchestratorSettings
from sbx_orchestrator.errors import SandboxFailed
from sbx_orchestrator.repository import SealedSecretRow


class SecretOpener:
    def __init__(self, settings: OrchestratorSettings) -> None:
        master_key = settings.secrets_master_key.get_secret_value()
        self._box = (
            SecretBox.from_settings(master_key, settings.secrets_old_keys.get_secret_value())
            if master_key
            else None
        )

    def open_all(
        self, sandbox_id: uuid.UUID, environment_id: uuid.UUID, rows: list[SealedSecretRow]
    ) -> dict[str, str]:
        """Plaintext of every secret, by key. A secret that cannot be decrypted fails the sandbox."""
        if not rows:
            return {}
        if self._box is None:
            raise SandboxFailed("secrets cannot be decrypted: no master key is configured")
        values: dict[str, str] = {}
        for row in rows:
            sealed = SealedSecret(key_id=row.key_id, nonce=row.nonce, ciphertext=row.ciphertext)
            try:
                value = self._box.open(sealed, secret_binding(environment_id, row.key))
            except DecryptionFailed:
                raise SandboxFailed(f"secret {row.key} could not be decrypted") from None
            register_secret(value, str(sandbox_id))
            values[row.key] = value
        return values
