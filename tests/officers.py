"""Officers at the review desk in tests: a logged-in HTTP client carrying its CSRF token."""
from __future__ import annotations

from fastapi.testclient import TestClient


def login(app, name: str, language: str = "en") -> TestClient:
    """``name`` logged in with the test password ``<name>-password``; state-changing calls carry the CSRF header.

    The desk speaks Chinese unless asked otherwise; these officers' browsers ask for ``language``.
    """
    client = TestClient(app, headers={"Accept-Language": language})
    response = client.post("/api/login", json={"username": name, "password": f"{name}-password"})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf"]
    return client
