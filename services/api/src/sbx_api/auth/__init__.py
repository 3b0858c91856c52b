"""auth domain of the API."""
