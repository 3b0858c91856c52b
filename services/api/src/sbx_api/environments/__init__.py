"""environments domain of the API."""
