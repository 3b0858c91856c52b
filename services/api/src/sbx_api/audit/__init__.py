"""audit domain of the API."""
