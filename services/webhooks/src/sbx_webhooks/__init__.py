"""The webhooks service: delivers sandbox events to the users' webhooks."""
