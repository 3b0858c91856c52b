"""The CLI's settings: `config.toml` in the config folder, overridden by `SBX_API_URL` / `SBX_API_KEY`.

The folder is `SBX_CONFIG_DIR` if set, else `$XDG_CONFIG_HOME/sbx`, else `~/.config/sbx`. The file
holds a credential, so it is written readable by its owner only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import tomli_w

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

from sandbox_platform._core import DEFAULT_BASE_URL
from sandbox_platform.errors import SandboxPlatformError

CONFIG_FILE = "config.toml"


def config_dir() -> Path:
    """Where the CLI keeps its settings."""
    explicit = os.environ.get("SBX_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "sbx"


@dataclass
class Config:
    """What `sbx login` / `sbx signup` remember."""

    api_url: str | None = None
    email: str | None = None
    token: str | None = None
    api_key: str | None = None

    @classmethod
    def load(cls) -> Config:
        """The saved settings (empty when there are none)."""
        path = config_dir() / CONFIG_FILE
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SandboxPlatformError("CONFIG_ERROR", None, f"{path} cannot be read: {exc}") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in known and v is not None})

    def save(self) -> Path:
        """Write the settings (owner-only permissions); the file's path."""
        folder = config_dir()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / CONFIG_FILE
        data = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(tomli_w.dumps(data))
        path.chmod(0o600)
        return path

    @property
    def effective_url(self) -> str:
        """The API's URL: `SBX_API_URL`, else the saved one, else the default."""
        return os.environ.get("SBX_API_URL") or self.api_url or DEFAULT_BASE_URL

    @property
    def effective_api_key(self) -> str | None:
        """`SBX_API_KEY`, else the saved API key."""
        return os.environ.get("SBX_API_KEY") or self.api_key

    @property
    def logged_in(self) -> bool:
        """True when there is a credential to send."""
        return bool(self.effective_api_key or self.token)
