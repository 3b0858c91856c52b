"""Ports and previews: HTTP and WebSocket to any port of a running sandbox, and signed preview
URLs (see docs/previews.md)."""
