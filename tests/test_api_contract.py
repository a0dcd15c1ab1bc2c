"""The JSON API's contract: every route typed in the schema, one error shape, and no input that makes a 500."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import ValidationError
from schemathesis import GenerationMode

from nonsite.review_ui import create_app, routes_cameras, routes_cases, routes_outbox, routes_shops, routes_stats
from nonsite.review_ui import routes_api as api
from nonsite.review_ui.api_models import ErrorBody
from nonsite.review_ui.deps import COOKIE

from .officers import login

ERROR_REF = "#/components/schemas/ErrorBody"
EXAMPLES = 10  # per operation and way of generating: about 300 requests in all, well under a minute


@pytest.fixture()
def app(review):
    return create_app(review)


def assert_error(response, status: int, *, fields: bool = False) -> dict:
    """The one error shape: a string to show, and per-field errors exactly when input failed validation."""
    assert response.status_code == status, response.text
    body = response.json()
    ErrorBody.model_validate(body)
    assert isinstance(body["detail"], str) and body["detail"]
    assert ("errors" in body) == fields, body
    return body


def test_the_schema_types_every_api_route_and_its_errors(app):
    schema = login(app, "alice").get("/api/openapi.json").json()
    every = [*api.router.routes, *routes_cameras.router.routes, *routes_stats.router.routes, *routes_shops.router.routes,
             *routes_outbox.router.routes, *routes_cases.api.routes]
    routes = {(method.lower(), route.path_format) for route in every if route.include_in_schema for method in route.methods}
    documented = {(method, path) for path, operations in schema["paths"].items() for method in operations}
    assert routes == documented
    for method, path in documented:
        responses = schema["paths"][path][method]["responses"]
        content = responses["200"]["content"]
        if list(content) == ["application/json"]:  # a JSON reply: a model, not FastAPI's untyped {}
            assert "#/components/schemas/" in json.dumps(content), (method, path)
        else:  # a file: bytes, in each media type it may have
            assert all(declared["schema"] == {"type": "string", "format": "binary"} for declared in content.values()), (method, path)
        for status in ("401", "403", "404", "422"):
            assert responses[status]["content"]["application/json"]["schema"]["$ref"] == ERROR_REF, (method, path, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # validation errors are ErrorBody too
    assert set(schema["paths"]["/api/cases/{case_id}/dossier"]["get"]["responses"]["200"]["content"]) == {"application/zip"}


def test_every_api_error_has_the_one_shape(app):
    assert_error(TestClient(app).get("/api/packs"), 401)
    assert_error(TestClient(app).post("/api/login", json={"username": "alice", "password": "wrong"}), 401)
    alice = login(app, "alice")
    pack = alice.get("/api/packs").json()[0]["pack_id"]
    assert_error(alice.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}, headers={"X-CSRF-Token": "forged"}), 403)
    assert_error(alice.get("/api/dashboard"), 403)
    assert_error(alice.get("/api/cases/9999"), 404)
    assert_error(alice.get("/api/no-such-route"), 404)
    assert alice.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"}).status_code == 200
    again = alice.post(f"/api/packs/{pack}/decision", json={"decision": "confirm"})
    assert "already confirmed by alice" in assert_error(again, 409)["detail"]
    refused = assert_error(alice.post(f"/api/packs/{pack}/decision", json={"decision": "maybe"}), 422, fields=True)
    assert refused["errors"][0]["field"] == "body.decision" and "body.decision" in refused["detail"]
    assert_error(alice.post("/api/cases/1/transition", json={"to_state": "notified"}), 422)  # the workflow's refusal


@pytest.mark.parametrize("path, field", [("/api/cases/99999999999999999999999", "path.case_id"),
                                         ("/api/audit?limit=99999999999999999999999", "query.limit"),
                                         ("/api/audit?limit=0", "query.limit"),
                                         ("/api/packs?day=junk", "query.day"),
                                         ("/api/packs?day=9999-12-31", "query.day"),
                                         ("/api/cases?state=" + "x" * 1000, "query.state")])
def test_nonsense_parameters_are_422_not_500(app, path, field):
    body = assert_error(login(app, "sam").get(path), 422, fields=True)
    assert [e["field"] for e in body["errors"]] == [field]


def test_pages_survive_junk_filters_and_show_only_known_login_errors(app):
    sam = login(app, "sam")
    for day in ("junk", "0001-01-01", "9999-12-31"):
        page = sam.get("/queue", params={"day": day})
        assert page.status_code == 200 and "<nav>" in page.text, day
    for path in ("/cases/99999999999999999999999", "/cases/0", f"/packs/{'x' * 500}", f"/admin/sources/{'y' * 500}"):
        assert sam.get(path).status_code in (403, 404, 422), path
    forged = TestClient(app).get("/login", params={"error": "Your account is locked: call 400-123-4567"})
    assert forged.status_code == 200 and "400-123-4567" not in forged.text
    assert "session has ended" in TestClient(app, headers={"Accept-Language": "en"}).get("/login", params={"error": "expired"}).text


def error_shaped(body: bytes) -> bool:
    try:
        ErrorBody.model_validate_json(body)
    except ValidationError:
        return False
    return True


def real_ids(client: TestClient) -> dict[str, object]:
    """Path parameters that exist, so generated bodies reach the decision, workflow and zone code, not only a 404."""
    pending = client.get("/api/packs").json()
    case_id = client.post(f"/api/packs/{pending[0]['pack_id']}/decision", json={"decision": "confirm"}).json()["case_id"]
    return {"pack_id": pending[1]["pack_id"], "path": "annotated/threshold.jpg", "case_id": case_id, "source_id": "cam-plaza-02"}


def run(strategy, send) -> None:
    """A few derandomized examples of one strategy: the same requests every run, none shrunk or replayed."""

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def probe(case):
        send(case)

    try:
        probe()
    except Unsatisfiable:  # negative mode, where the schema admits every input (e.g. no parameters at all)
        pass


def test_a_bounded_schemathesis_run_finds_no_server_error(app):
    admin = login(app, "ada")
    auth = {"headers": {"X-CSRF-Token": admin.headers["X-CSRF-Token"]}, "cookies": {COOKIE: admin.cookies[COOKIE]}}
    # Logging out would end the session the rest of the run uses, so the run would test only the 401.
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, cookies=auth["cookies"]).exclude(path="/api/logout")
    real = real_ids(admin)
    statuses: Counter[int] = Counter()
    errors: list[str] = []

    def send(case) -> None:
        """One request; a server error, or an error not in the one shape, is recorded with what was sent."""
        try:
            response = case.call(**auth)
        except Exception as exc:  # noqa: BLE001 - the app raised: a 500 to the client, recorded like one
            status, answer = 500, repr(exc).encode()
        else:
            status, answer = response.status_code, response.content
        statuses[status] += 1
        if status >= 500 or (status >= 400 and not error_shaped(answer)):
            errors.append(f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}: {status} {answer[:300]!r}")

    for result in schema.get_all_operations():
        operation = result.ok()
        known = {name: value for name, value in real.items() if f"{{{name}}}" in operation.path}
        ways = [(GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {})] + [(GenerationMode.POSITIVE, known)] * bool(known)
        for mode, fixed in ways:
            run(operation.as_strategy(generation_mode=mode, path_parameters=fixed or None), send)
    print(f"\nschemathesis: {statuses.total()} requests, {sum(n for s, n in statuses.items() if s >= 500)} server errors, "
          f"statuses {dict(sorted(statuses.items()))}")
    assert statuses.total() >= 200
    assert not errors, "\n".join(errors)
