"""The service worker: a reload with the server down still reaches the unlock screen
(and unlocks, offline), and a new deploy is used from the next load on. Static files
are content-hashed and cached for a year; the pages are revalidated."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ds_harness import Postgres, ServerProcess

from .chat import chromium, person, sign_up, state, unlock, wait, wait_state

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import build  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server whose static directory the test can redeploy, and stop and restart."""
    out = tmp_path_factory.mktemp("site") / "dist"
    build.build(out)
    pg = Postgres.start()
    name = f"web_offline_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"
    url = pg.create_database(name)
    logs = tmp_path_factory.mktemp("offline-server-logs")
    env = {"DATABASE_URL": url, "STATIC_DIR": str(out)}
    proc = ServerProcess(env, log_dir=logs).start()
    box = {"proc": proc, "out": out, "env": env, "logs": logs}
    yield box
    box["proc"].stop()
    pg.drop_database(name)


def deploy_with_changed_css(out: Path, tmp: Path) -> str:
    """Builds a new deploy from a copy of web/ whose stylesheet changed; returns the
    new stylesheet's bundle path."""
    web = tmp / "web"
    shutil.copytree(build.WEB, web, ignore=shutil.ignore_patterns("dist"))
    css = web / "css" / "app.css"
    css.write_text(css.read_text() + "\n/* the next deploy */ .brand { letter-spacing: .01em; }\n")
    saved = build.WEB
    build.WEB = web
    try:
        build.build(out)
    finally:
        build.WEB = saved
    page = (out / "index.html").read_text()
    start = page.index('href="assets/app.') + len('href="')
    return page[start:page.index('"', start)]


def controlled(page: Any) -> bool:
    return bool(page.evaluate("""async () => navigator.serviceWorker.controller !== null
        && (await caches.keys()).some(k => k.startsWith('intellacc-shell-'))"""))


def test_cache_headers(site: dict[str, Any]) -> None:
    base = site["proc"].base_url
    page = httpx.get(base + "/")
    assert page.headers["cache-control"] == "no-cache"
    etag = page.headers["etag"]
    again = httpx.get(base + "/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    for path in ("/sw.js", "/build.json"):
        assert httpx.get(base + path).headers["cache-control"] == "no-cache", path
    manifest = httpx.get(base + "/build.json").json()
    assets = [manifest["wheel"], manifest["ui"], manifest["pyodide"] + "pyodide.asm.wasm",
              *manifest["modules"].values()]
    for path in assets:
        r = httpx.get(f"{base}/{path}")
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable", path
    wasm = httpx.get(f"{base}/{manifest['pyodide']}pyodide.asm.wasm")
    assert wasm.headers["content-type"] == "application/wasm"
    js = httpx.get(f"{base}/{manifest['modules']['app_boot.mjs']}")
    assert js.headers["content-type"].startswith("text/javascript")
    # Every file under assets/ carries the hash of its content (or sits in a directory
    # named by the hash of all of it): an asset's URL never serves other bytes.
    for path in (site["out"] / "assets").iterdir():
        assert len(path.name.split(".")[1]) == build.HASH_CHARS, path.name


def test_offline_reload_and_new_deploy(site: dict[str, Any], tmp_path: Path) -> None:
    proc: ServerProcess = site["proc"]
    origin = proc.base_url
    with chromium() as browser:
        alice = person(browser, origin, "alice")
        sign_up(alice, origin)
        page = alice.page
        wait(page, lambda: controlled(page), "the service worker controls the page")

        # The server goes away: the page still starts, from the service worker.
        proc.stop()
        page.reload()
        wait_state(page, "locked/unlock")
        unlock(page)
        assert page.inner_text("#conn") != "online"

        # Back online, with a new deploy.
        site["proc"] = proc = ServerProcess(site["env"], port=proc.port,
                                            log_dir=site["logs"]).start()
        new_css = deploy_with_changed_css(site["out"], tmp_path)
        page.reload()
        wait_state(page, "locked/unlock")
        used = page.evaluate("document.querySelector('link[rel=stylesheet]').getAttribute('href')")
        assert used == new_css
        assert "letter-spacing" in page.evaluate(
            "[...document.styleSheets].map(s => [...s.cssRules].map(r => r.cssText).join()).join()")
        unlock(page)
        wait(page, lambda: page.inner_text("#conn") == "online", "online again")
        # The new service worker takes over and caches the new deploy.
        build_id = httpx.get(origin + "/build.json").json()["build"]
        wait(page, lambda: page.evaluate(
            "async (id) => (await caches.keys()).includes('intellacc-shell-' + id)", build_id),
             "the new deploy precached")
        assert state(page) == "ready/chat"
        assert not alice.guard.offsite
