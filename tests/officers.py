"""Officers at the review desk in tests: a logged-in HTTP client carrying its CSRF token."""
from __future__ import annotations

from fastapi.testclient import TestClient


def login(app, name: str) -> TestClient:
    """``name`` logged in with the test password ``<name>-password``; state-changing calls carry the CSRF header."""
    client = TestClient(app)
    response = client.post("/api/login", json={"username": name, "password": f"{name}-password"})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf"]
    return client
