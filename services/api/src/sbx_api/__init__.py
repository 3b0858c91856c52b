"""The API service: the HTTP and WebSocket contract of the sandbox platform."""
