"""The web app's static files, security headers, the OpenAPI schema, body limits."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from ds_harness import ServerProcess

IMPORT_MAP = '{"imports": {"pyodide": "./pyodide/pyodide.mjs"}}'
PAGE = f"""<!doctype html><html><head>
<script type="importmap">{IMPORT_MAP}</script>
<script type="module" src="js/app.mjs"></script>
</head><body>hello</body></html>"""


@pytest.fixture(scope="module")
def web_server(
    module_server_factory: Callable[..., ServerProcess],
    database_factory: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text(PAGE)
    (root / "js").mkdir()
    (root / "js" / "app.mjs").write_text("export const x = 1;\n")
    (root / "api").mkdir()  # a file tree that would shadow the API if mounted first
    (root / "api" / "health").write_text("static!")
    return module_server_factory(database_factory(), STATIC_DIR=str(root), DS_MAX_BODY_BYTES="4096")


def _csp(response: httpx.Response) -> dict[str, list[str]]:
    policy = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        policy[name] = values
    return policy


def test_static_files_with_isolation_headers_and_strict_csp(web_server: ServerProcess) -> None:
    r = httpx.get(web_server.base_url + "/")
    assert r.status_code == 200 and "hello" in r.text
    assert r.headers["cross-origin-opener-policy"] == "same-origin"
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    csp = _csp(r)
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    digest = base64.b64encode(hashlib.sha256(IMPORT_MAP.encode()).digest()).decode()
    # Exactly the page's own inline import map is allowed, no other inline script.
    assert csp["script-src"] == ["'self'", "'wasm-unsafe-eval'", f"'sha256-{digest}'"]
    assert "'unsafe-inline'" not in r.headers["content-security-policy"]
    assert "'unsafe-eval'" not in r.headers["content-security-policy"]

    js = httpx.get(web_server.base_url + "/js/app.mjs")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cross-origin-embedder-policy"] == "require-corp"
    assert _csp(js)["script-src"] == ["'self'", "'wasm-unsafe-eval'"]


def test_api_is_never_shadowed_by_static_files(web_server: ServerProcess) -> None:
    r = httpx.get(web_server.base_url + "/api/health")
    assert r.json() == {"status": "ok"}
    r = httpx.get(web_server.base_url + "/api/no/such/endpoint")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert r.headers["cache-control"] == "no-store"
    assert httpx.get(web_server.base_url + "/missing.html").status_code == 404


def test_openapi_documents_the_delivery_api(web_server: ServerProcess) -> None:
    schema = httpx.get(web_server.base_url + "/api/openapi.json").json()
    paths = schema["paths"]
    for path, method in [
        ("/api/mls/key-packages", "post"),
        ("/api/mls/key-packages/count", "get"),
        ("/api/mls/key-packages/{user_id}", "get"),
        ("/api/mls/messages/welcome", "post"),
        ("/api/mls/messages/group", "post"),
        ("/api/mls/messages/{group_id}", "get"),
        ("/api/mls/groups", "post"),
        ("/api/auth/register", "post"),
        ("/api/auth/login", "post"),
        ("/api/users/{user_id}/devices", "get"),
    ]:
        assert method in paths[path], (path, method)
        assert paths[path][method].get("description") or paths[path][method].get("summary")
    assert "409" in paths["/api/mls/messages/group"]["post"]["responses"]


def test_body_size_limit(web_server: ServerProcess) -> None:
    big = {"username": "x" * 5000, "password": "y"}
    r = httpx.post(web_server.base_url + "/api/auth/register", json=big)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    # Without Content-Length (chunked), the limit holds as the body streams in.
    r = httpx.post(web_server.base_url + "/api/auth/register", content=chunks(),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_missing_web_build_is_a_clear_404(tmp_path: Path, log_dir: Path,
                                          database_factory: Callable[[], str]) -> None:
    srv = ServerProcess({"DATABASE_URL": database_factory(),
                         "STATIC_DIR": str(tmp_path / "nothing-here")}, log_dir=log_dir)
    srv.start()
    try:
        r = httpx.get(srv.base_url + "/")
        assert r.status_code == 404
        assert r.headers["cross-origin-opener-policy"] == "same-origin"
    finally:
        srv.stop()


def test_permissions_policy_and_hsts_behind_a_trusted_tls_proxy(
    web_server: ServerProcess, server_factory: Callable[..., ServerProcess],
    database_factory: Callable[[], str],
) -> None:
    r = httpx.get(web_server.base_url + "/", headers={"X-Forwarded-Proto": "https"})
    policy = r.headers["permissions-policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy
    # Plain HTTP, and a forwarded scheme from a proxy nobody configured: no HSTS.
    assert "strict-transport-security" not in r.headers
    proxied = server_factory(database_factory(), DS_FORWARDED_ALLOW_IPS="127.0.0.1")
    r = httpx.get(proxied.base_url + "/api/health", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "strict-transport-security" not in httpx.get(proxied.base_url + "/api/health").headers
