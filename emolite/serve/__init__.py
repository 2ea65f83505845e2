"""Live emotion recognition in the browser: `emolite serve` (protocol: emolite/serve/protocol.py)."""

from .app import Limits, create_app, serve

__all__ = ["Limits", "create_app", "serve"]
