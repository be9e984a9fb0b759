"""The public register and the block page over a real `writ web` on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree as ET

import aiohttp
import pytest

from tests.tidy import problems, tidy_binary
from tests.web.register_data import ACTS, EVIL, XSS, holder
from writ.policies import PagesPolicy, Policy
from writ.web import WebHandle, WebStartError, run_web

REGISTER = "https://register.isp.example"


async def start(acts: tuple = ACTS, **pages: object) -> WebHandle:  # type: ignore[type-arg]
    policy = Policy(pages=PagesPolicy(**pages))  # type: ignore[arg-type]
    return await run_web(holder(acts), policy, listen="127.0.0.1:0")


@pytest.fixture
async def web() -> AsyncIterator[str]:
    h = await start()
    yield f"http://127.0.0.1:{h.port}"
    await h.shutdown()


async def get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.text(), dict(r.headers)


async def get_json(url: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as s, s.get(
            url, headers={"Accept": "application/json"}) as r:
        assert r.content_type == "application/json"
        return r.status, await r.json()


async def test_orders_lists_what_is_in_force(web: str) -> None:
    status, body, headers = await get(f"{web}/orders")
    assert status == 200
    assert headers["Content-Language"] == "en"
    for oid in ("KZ-2015-001", "KZ-2015-002"):
        assert f'href="/orders/{oid}"' in body
    assert "KZ-2014-009" not in body  # expired
    assert "KZ-2015-004" not in body  # revoked
    _, data = await get_json(f"{web}/orders")
    assert [o["id"] for o in data["orders"]] == ["KZ-2015-001", "KZ-2015-002"]  # type: ignore[index]


@pytest.mark.parametrize(("accept_language", "lang", "heading"), [
    ("kk-KZ,kk;q=0.9,ru;q=0.8", "kk", "Күшіндегі сот шешімдері"),
    ("ru-RU,ru;q=0.9,en;q=0.5", "ru", "Действующие судебные решения"),
    ("de-DE,en;q=0.3", "en", "Court orders in force"),
    ("de, fr;q=0.5", "en", "Court orders in force"),  # none we have: the default
    ("ru;q=0, kk;q=0.1", "kk", "Күшіндегі сот шешімдері"),  # q=0: not acceptable
])
async def test_language_from_accept_language(
        web: str, accept_language: str, lang: str, heading: str) -> None:
    _, body, headers = await get(f"{web}/orders", **{"Accept-Language": accept_language})
    assert headers["Content-Language"] == lang
    assert f'<html lang="{lang}">' in body
    assert f"<h1>{heading}</h1>" in body


async def test_lang_parameter_and_policy_default() -> None:
    h = await start(default_language="ru")
    try:
        base = f"http://127.0.0.1:{h.port}"
        _, body, _ = await get(f"{base}/orders")
        assert "<h1>Действующие судебные решения</h1>" in body
        _, body, _ = await get(f"{base}/orders?lang=kk", **{"Accept-Language": "en"})
        assert '<html lang="kk">' in body
    finally:
        await h.shutdown()


async def test_order_page_has_the_whole_history(web: str) -> None:
    status, body, _ = await get(f"{web}/orders/KZ-2015-001")
    assert status == 200
    assert "In force, partly restored" in body
    assert "KZ-2015-003" in body
    assert "url videohost.example/live/banned" in body
    assert "domain videohost.example" in body
    assert "url news.example/article?id=7" in body
    # the restoration's own id is a stable link to the same history
    _, again, _ = await get(f"{web}/orders/KZ-2015-003")
    assert "<h1>Court order KZ-2015-001</h1>" in again
    _, data = await get_json(f"{web}/orders/KZ-2015-004")
    assert data["status"] == "revoked"  # type: ignore[index]
    assert [a["id"] for a in data["history"]] == ["KZ-2015-004", "KZ-2015-005"]  # type: ignore[index]


async def test_confidential_targets_are_counts_only(web: str) -> None:
    _, body, _ = await get(f"{web}/orders/KZ-2015-002")
    assert "secret-one" not in body
    assert "secret-two" not in body
    assert "confidential: 2 targets" in body
    _, data = await get_json(f"{web}/orders/KZ-2015-002")
    assert "secret" not in str(data)
    assert data["targets"] == 2  # type: ignore[index]
    _, listing = await get_json(f"{web}/orders")
    assert "secret" not in str(listing)


async def test_unknown_order_is_404(web: str) -> None:
    status, body, _ = await get(f"{web}/orders/NOPE-1")
    assert status == 404
    assert "No such court order" in body
    assert (await get_json(f"{web}/orders/NOPE-1"))[0] == 404


async def test_lookup_form_and_json(web: str) -> None:
    _, body, _ = await get(f"{web}/lookup?q=www.streams.example")
    assert "Blocked now by court order." in body
    assert 'href="/orders/KZ-2015-001"' in body
    _, data = await get_json(f"{web}/lookup?q=http://news.example/article?id=7")
    assert data["decision"] == "block"
    assert data["orders"] == ["KZ-2015-001"]
    _, data = await get_json(f"{web}/lookup?q=free.example")
    assert data["decision"] == "allow"  # type: ignore[index]
    _, data = await get_json(f"{web}/lookup?q=192.0.2.1")
    assert (data["kind"], data["decision"]) == ("ip", "allow")  # type: ignore[index]
    _, data = await get_json(f"{web}/lookup?q=198.51.100.7")  # inside an ip_prefix target
    assert (data["kind"], data["decision"], data["orders"]) == (  # type: ignore[index]
        "ip", "block", ["KZ-2015-001"])
    assert data["rule"] == "ip_prefix 198.51.100.0/24"  # type: ignore[index]
    _, body, _ = await get(f"{web}/lookup?q=198.51.100.0/28")
    assert "Blocked now by court order." in body
    status, data = await get_json(f"{web}/lookup?q=bad..name")
    assert status == 400
    assert data["decision"] == "invalid"
    status, body, _ = await get(f"{web}/lookup")
    assert status == 200
    assert '<form method="get"' in body


async def test_atom_feed(web: str) -> None:
    status, body, headers = await get(f"{web}/orders.atom")
    assert status == 200
    assert headers["Content-Type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    root = ET.fromstring(body.encode())
    ids = [e.findtext("a:id", namespaces=ns) for e in root.findall("a:entry", ns)]
    assert f"{web}/orders/KZ-2015-005" in ids
    assert len(ids) == len(ACTS)
    _, data = await get_json(f"{web}/orders.atom")
    assert len(data["entries"]) == len(ACTS)  # type: ignore[index]


@pytest.mark.parametrize(("pages", "link"), [
    ({}, "https://isp.example/blocking"),
    ({"register_url": REGISTER}, f"{REGISTER}/orders"),
    ({"register_url": REGISTER, "blocked_by": "https://other.example/why"},
     "https://other.example/why"),
])
async def test_blocked_by_link(pages: dict[str, str], link: str) -> None:
    h = await start(**pages)
    try:
        status, body, headers = await get(f"http://127.0.0.1:{h.port}/",
                                          Host="streams.example")
        assert status == 451
        assert headers["Link"] == f'<{link}>; rel="blocked-by"'
        if "register_url" in pages:
            assert f'href="{REGISTER}/orders/KZ-2015-001"' in body
        # the register's own name is the register, not a sinkholed site
        _, body, _ = await get(f"http://127.0.0.1:{h.port}/orders", Host="register.isp.example")
        assert ("<h1>Court orders in force</h1>" in body) == ("register_url" in pages)
    finally:
        await h.shutdown()


async def test_block_page_in_the_readers_language(web: str) -> None:
    _, body, headers = await get(f"{web}/", Host="streams.example",
                                 **{"Accept-Language": "ru"})
    assert headers["Content-Language"] == "ru"
    assert "<h1>Этот адрес заблокирован по решению суда</h1>" in body
    assert "Видеохостинг с нелицензионными трансляциями" in body


async def test_rate_limit_per_client() -> None:
    h = await start(rate_limit=3)
    try:
        base = f"http://127.0.0.1:{h.port}"
        got = [(await get(f"{base}/orders"))[0] for _ in range(5)]
        assert got[:3] == [200, 200, 200]
        assert got[3:] == [429, 429]
        status, _, headers = await get(f"{base}/lookup")
        assert status == 429
        assert int(headers["Retry-After"]) >= 1
        assert (await get(f"{base}/healthz"))[0] == 200  # probes are not the register
    finally:
        await h.shutdown()


async def test_script_in_every_field_stays_text() -> None:
    h = await start((*ACTS, EVIL), register_url="https://register.isp.example")
    try:
        base = f"http://127.0.0.1:{h.port}"
        pages = [await get(f"{base}/", Host="evil.example", **{"Accept-Language": lang})
                 for lang in ("en", "kk", "ru")]
        for path in ("/orders", "/orders/EVIL-1", "/lookup?q=evil.example",
                     f"/lookup?q={XSS}", "/orders.atom"):
            for lang in ("en", "kk", "ru"):
                pages.append(await get(base + path, Host="register.isp.example",
                                       **{"Accept-Language": lang}))
        for status, body, headers in pages:
            if headers["Content-Type"].startswith("application/atom+xml"):
                ET.fromstring(body.encode())  # still well-formed XML
            assert status in (200, 400, 451)
            assert "<script" not in body.lower()
            assert "&lt;script&gt;" in body
    finally:
        await h.shutdown()


async def test_a_language_added_by_the_operator(tmp_path: Path) -> None:
    po = tmp_path / "uz" / "LC_MESSAGES" / "writ.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
                  'msgid "Court orders in force"\nmsgstr "Amaldagi sud qarorlari"\n',
                  encoding="utf-8")
    h = await start(languages_dir=str(tmp_path))
    try:
        _, body, headers = await get(f"http://127.0.0.1:{h.port}/orders",
                                     **{"Accept-Language": "uz"})
        assert headers["Content-Language"] == "uz"
        assert "<h1>Amaldagi sud qarorlari</h1>" in body
        assert "Court" in body  # untranslated messages stay English, never blank
    finally:
        await h.shutdown()


async def test_a_broken_catalog_stops_the_start_with_its_name(tmp_path: Path) -> None:
    po = tmp_path / "uz" / "LC_MESSAGES" / "writ.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "x"\nmsgstr "y"\nmsgid\n"broken', encoding="utf-8")
    with pytest.raises(WebStartError, match=str(po)):
        await start(languages_dir=str(tmp_path))


@pytest.fixture(scope="module")
def tidy() -> str:
    return tidy_binary()


async def test_every_page_is_valid_html(tidy: str) -> None:
    h = await start((*ACTS, EVIL), register_url="https://register.isp.example")
    try:
        base = f"http://127.0.0.1:{h.port}"
        targets = [("/", "streams.example"), ("/", "evil.example"),
                   ("/", "free.example")]
        targets += [(p, "register.isp.example") for p in (
            "/orders", "/orders/KZ-2015-001", "/orders/KZ-2015-002", "/orders/EVIL-1",
            "/lookup", "/lookup?q=videohost.example", "/orders/NOPE")]
        for path, host in targets:
            for lang in ("en", "kk", "ru"):
                _, body, _ = await get(base + path, Host=host, **{"Accept-Language": lang})
                found = problems(tidy, body.encode("utf-8"))
                assert not found, f"{host}{path} [{lang}]: {found}"
    finally:
        await h.shutdown()
