"""streams domain of the API: event feeds (SSE and WebSocket), the logs socket, the terminal socket."""
