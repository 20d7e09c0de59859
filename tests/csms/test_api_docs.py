"""`/docs` works offline: Swagger UI's assets come from this node, never from a CDN."""

from __future__ import annotations

import re

from tests.conftest import Api


async def test_docs_work_offline(api: Api) -> None:
    docs = await api.client.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", docs.text)
    assert urls and not [url for url in urls if not url.startswith("/")], urls
    assert "//" not in docs.text.replace("://", ""), docs.text
    assert not re.search(r"https?://", docs.text), docs.text
    for url in urls:
        asset = await api.client.get(url)
        assert asset.status_code == 200, url
    script = await api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"] and len(script.content) > 100_000
    style = await api.client.get("/docs/assets/swagger-ui.css")
    assert style.headers["content-type"].startswith("text/css")
    assert (await api.client.get("/redoc")).status_code == 404
