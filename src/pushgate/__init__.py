"""pushgate: self-hosted targeted push notifications, wire-compatible with Insider's Targeted Push API."""

__version__ = "0.1.0"
