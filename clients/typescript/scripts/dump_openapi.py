"""Write the API's OpenAPI document to a file, without starting any server.

`create_app()` only connects to PostgreSQL and NATS in its lifespan, which never runs here;
the settings it checks at creation get placeholders. The TypeScript types are generated from
this file (`npm run generate`), and the test suite compares it with the running code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sbx_api.app import create_app
from sbx_api.config import ApiSettings

# Only the length is checked when the app is created; no token is ever signed with it.
PLACEHOLDER_JWT_SECRET = "openapi-dump-" + "x" * 32


def openapi_document() -> dict[str, Any]:
    settings = ApiSettings(jwt_secret=SecretStr(PLACEHOLDER_JWT_SECRET))
    return create_app(settings).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: dump_openapi.py OUTPUT.json")
    Path(sys.argv[1]).write_text(render(openapi_document()), encoding="utf-8")


if __name__ == "__main__":
    main()
