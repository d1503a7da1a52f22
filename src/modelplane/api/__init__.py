"""The REST API (FastAPI): ``create_app()``, and the pieces another app composes with it."""

from modelplane.api.app import API_PREFIX, create_app, include_routers
from modelplane.api.errors import add_error_handlers
from modelplane.api.security import get_platform, require_admin, require_read, require_write

__all__ = [
    "API_PREFIX",
    "add_error_handlers",
    "create_app",
    "get_platform",
    "include_routers",
    "require_admin",
    "require_read",
    "require_write",
]
