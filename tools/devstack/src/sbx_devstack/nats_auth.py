"""NATS users for an embedded server: a random password per user, the server given only hashes.

`make run` keeps its passwords in `.state/nats-users.env` (created on first run, like the other
development secrets) and hands each service only its own; the tests make a set per session
and add a user of their own that no deployment has.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from sbx_common.nats_permissions import SERVICE_USER_OF, SERVICE_USERS, NatsUser, render_config

# The passwords are random 32-byte tokens, which no guessing reaches whatever the cost; a low
# cost keeps each connection's check (nats-server runs bcrypt on every CONNECT) cheap.
BCRYPT_COST = 6


def new_password() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class NatsCredentials:
    """A password per user; `users` are the service users plus any extra (e.g. the tests')."""

    passwords: dict[str, str]
    extra_users: list[NatsUser] = field(default_factory=list)

    @classmethod
    def generate(cls, extra_users: Iterable[NatsUser] = ()) -> NatsCredentials:
        extra = list(extra_users)
        names = [*SERVICE_USERS, *(u.name for u in extra)]
        return cls({name: new_password() for name in names}, extra)

    @classmethod
    def load_or_create(cls, path: Path) -> NatsCredentials:
        """The service users' passwords kept in `path` (user=password lines, mode 0600)."""
        known: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                name, _, password = line.partition("=")
                if name and password:
                    known[name] = password
        missing = [name for name in SERVICE_USERS if name not in known]
        for name in missing:
            known[name] = new_password()
        if missing or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text("".join(f"{k}={v}\n" for k, v in known.items()))
        return cls(known)

    @property
    def users(self) -> list[NatsUser]:
        return [*SERVICE_USERS.values(), *self.extra_users]

    def authorization(self) -> str:
        """The nats-server authorization block, with bcrypt hashes only."""
        hashes = {
            name: bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
            for name, password in self.passwords.items()
        }
        return render_config(hashes, self.users)

    def user_env(self, user: str) -> dict[str, str]:
        """SBX_NATS_USER / SBX_NATS_PASSWORD of one user."""
        return {"SBX_NATS_USER": user, "SBX_NATS_PASSWORD": self.passwords[user]}

    def service_env(self, service: str) -> dict[str, str]:
        """The settings of one service (api, orchestrator, ..., migrate): its own user only."""
        return self.user_env(SERVICE_USER_OF[service])
