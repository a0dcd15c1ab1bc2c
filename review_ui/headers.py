"""Security headers on every answer: no framing, no referrer, no sniffing, no caching outside /static,
and a Content Security Policy that runs only the application's own script plus inline calls carrying this request's nonce."""
from __future__ import annotations

import secrets

from fastapi import FastAPI, Request


def policy(nonce: str) -> str:
    return ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            f"script-src 'self' 'nonce-{nonce}'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


def add_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _headers(request: Request, call_next):
        request.state.csp_nonce = secrets.token_urlsafe(16)
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", policy(request.state.csp_nonce))
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if not request.url.path.startswith("/static/"):  # pages and API answers show evidence and personal data:
            response.headers.setdefault("Cache-Control", "no-store")  # no copy on disk, none shown again by Back after log-out
        return response
