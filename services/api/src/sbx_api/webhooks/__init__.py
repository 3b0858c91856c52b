"""webhooks domain of the API."""
