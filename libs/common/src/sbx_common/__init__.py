"""Code shared by every service of the sandbox platform."""
