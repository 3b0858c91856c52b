"""api keys domain of the API."""
