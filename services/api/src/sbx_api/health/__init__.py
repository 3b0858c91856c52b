"""health domain of the API."""
