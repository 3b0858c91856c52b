"""sandboxes domain of the API."""
