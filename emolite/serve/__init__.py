"""Live emotion recognition in the browser: `emolite serve` (see emolite/serve/app.py for the protocol)."""

from .app import Limits, create_app, serve

__all__ = ["Limits", "create_app", "serve"]
