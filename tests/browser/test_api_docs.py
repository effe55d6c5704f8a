"""/api/docs renders the platform's OpenAPI document with Swagger UI served from the platform itself
(no CDN, no inline script), so integrators can read the API on a closed network (R-OPS-4)."""
from __future__ import annotations

from tests.browser.test_workspace import ARTIFACTS, browser, server  # noqa: F401  (fixtures)


def test_the_api_reference_renders_from_local_files(server, browser):  # noqa: F811
    context = browser.new_context()
    page = context.new_page()
    problems, remote = [], []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: not r.url.startswith(server) and not r.url.startswith("data:") and remote.append(r.url))
    page.goto(server + "/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Inkless" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-tag-section")
    assert page.locator(".opblock-tag-section").count() >= 10  # one section per API area
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
    assert not remote, remote
    assert not problems, problems
    context.close()
