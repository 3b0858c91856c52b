"""The log-shipper service of the sandbox platform."""
