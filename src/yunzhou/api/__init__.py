"""HTTP API: FastAPI app factory, routes, schemas, authn/z and the one error handler."""

from yunzhou.api.app import create_app

__all__ = ["create_app"]
