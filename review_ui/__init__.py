"""Review UI: officers triage evidence packs, decide, and run simple cases to closure."""
from .app import Context, create_app
from .audit import verify_chain
from .auth import ROLES, add_user
from .db import create_tables

__all__ = ["ROLES", "Context", "add_user", "create_app", "create_tables", "verify_chain"]
