"""events domain of the API."""
