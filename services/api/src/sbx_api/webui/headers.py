"""Security headers of the pages the API serves to browsers.

The policy allows scripts and styles from the API's own origin only: no inline script, no
`eval`, nothing from another host. Style elements need this response's nonce: xterm.js creates
`<style>` elements at run time (its theme and cell sizes), and the dashboard stamps them with the
nonce it reads from its page (clients/web/src/cspNonce.ts) instead of the policy allowing
'unsafe-inline'. `connect-src` names the page's own WebSocket origin as well as 'self', for
browsers that do not yet count ws:/wss: of the same host as 'self'.
"""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request

# A Host header as browsers send it: a name or address, and a port.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def _socket_origins(request: Request) -> str:
    host = request.headers.get("host", "")
    return f" ws://{host} wss://{host}" if _HOST.match(host) else ""


def dashboard_policy(request: Request, nonce: str | None) -> str:
    styles = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src {styles}; img-src 'self'; font-src 'self'; "
        f"connect-src 'self'{_socket_origins(request)}; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )


# Swagger UI draws its icons from data: URLs in its stylesheet, and React sets inline style
# properties through the CSSOM (which the policy does not restrict).
DOCS_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# ReDoc renders with styled-components, which writes <style> elements it cannot stamp with a
# nonce, and runs its search in a worker made from a blob: URL. Its scripts still come only from
# the API.
REDOC_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def security_headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
