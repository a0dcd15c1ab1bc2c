"""Review UI: officers triage evidence packs, decide, and run simple cases to closure."""
from .app import create_app
from .auth import ROLES, add_user
from .deps import Context

__all__ = ["ROLES", "Context", "add_user", "create_app"]
