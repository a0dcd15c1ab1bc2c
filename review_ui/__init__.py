"""Review UI: officers triage evidence packs, decide, and run simple cases to closure.

The web app is imported when first asked for (PEP 562): a drone flight's workers use the case
modules (``flight_recheck``) and must not pay for FastAPI and the templates on every start.
"""
from importlib import import_module

_EXPORTS = {"create_app": ".app", "ROLES": ".auth", "add_user": ".auth", "Context": ".deps"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
