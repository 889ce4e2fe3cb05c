"""Delivery events pushed to a partner's URL (contract.md, "Webhooks"): the pure parts, the
signature (signing.py), the events and their schedule (events.py) and the URL rules
(addresses.py)."""
