"""The addon's decision matrix, hook by hook, with mitmproxy's taddons/tflow."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from mitmproxy import exceptions, http, tls
from mitmproxy.test import taddons, tflow

from tests.proxy.conftest import make_holder, policy
from tests.proxy.tls_helpers import client_hello_bytes, hello
from writ.audit import MemorySink
from writ.blocklist import BlocklistHolder
from writ.metrics import Metrics
from writ.policies import FailMode, TlsMode
from writ.proxy import STREAM_THRESHOLD, WritAddon

KEPT = ["EX-2015-0907-VH", "EX-2015-0928-VH-R"]


@pytest.fixture
def tctx(addon: WritAddon) -> Iterator[taddons.context]:
    with taddons.context(addon) as t:
        yield t


def request(addon: WritAddon, url: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> http.HTTPFlow:
    f = tflow.tflow()
    f.request.method = method
    f.request.url = url
    for k, v in (headers or {}).items():
        f.request.headers[k] = v
    addon.requestheaders(f)
    return f


# (url, blocked orders or None for "passes")
MATRIX = [
    ("http://news.example/watch?v=abc", ["ORD-NEWS"]),
    ("http://news.example/watch?t=9&v=abc", ["ORD-NEWS"]),  # extra parameter
    ("http://news.example/watch?v=abc&t=9", ["ORD-NEWS"]),  # reordered
    ("http://news.example/%77%61tch?%76=abc", ["ORD-NEWS"]),  # encoded unreserved chars
    ("http://news.example/x/../watch?v=abc", ["ORD-NEWS"]),  # dot segments
    ("http://news.example/./watch?v=abc", ["ORD-NEWS"]),
    ("http://news.example//watch?v=abc", ["ORD-NEWS"]),  # double slash
    ("http://news.example/watch/?v=abc", ["ORD-NEWS"]),  # trailing slash
    ("https://news.example:8443/watch?v=abc", ["ORD-NEWS"]),  # scheme and port
    ("http://NEWS.Example./watch?v=abc", ["ORD-NEWS"]),  # case and trailing dot
    ("http://news.example/watch?v=abd", None),
    ("http://news.example/watch", None),
    ("http://news.example/forum/thread/1?page=2", ["ORD-NEWS"]),  # url_prefix
    ("http://news.example/forum", ["ORD-NEWS"]),
    ("http://news.example/forumx", None),  # not at a segment boundary
    ("http://news.example/%66orum/x", ["ORD-NEWS"]),
    ("http://videohost.example/v/136071201", KEPT),  # kept blocked by the restoration
    ("https://videohost.example:443//v/./136071201#t=5", KEPT),
    ("http://videohost.example/v/136071202", None),  # restored
    ("http://videohost.example/", None),
    ("http://cdn.videohost.example/x.mp4", None),
    ("http://overlap.example/", ["ORD-A", "ORD-B"]),  # overlapping orders: both named
    ("http://deep.sub.blocked.example/any?thing=1", ["ORD-BLOCKED"]),
    ("http://notblocked.example/", None),
    ("http://127.0.0.1:8080/", None),
]


@pytest.mark.parametrize(("url", "orders"), MATRIX)
def test_url_matrix(tctx: taddons.context, addon: WritAddon, sink: MemorySink,
                    url: str, orders: list[str] | None) -> None:
    f = request(addon, url)
    rec = sink.records[-1]
    assert rec["component"] == "http"
    assert rec["target"].startswith("GET ")
    if orders is None:
        assert f.response is None  # passes on to the upstream
        assert (rec["decision"], rec["action"]) == ("allow", "pass")
        return
    assert f.response is not None
    assert f.response.status_code == 451
    assert f.response.reason == "Unavailable For Legal Reasons"
    assert f.response.headers["cache-control"] == "no-store"
    assert f.response.headers["link"] == '<https://isp.example/blocking>; rel="blocked-by"'
    assert (rec["decision"], rec["action"], rec["orders"]) == ("block", "451", orders)
    assert rec["rule"]
    assert rec["blocklist_version"] == addon.holder.index.version
    for oid in orders:
        assert oid in f.response.text


def test_block_page_names_the_order(tctx: taddons.context, addon: WritAddon) -> None:
    f = request(addon, "http://videohost.example/v/136071201")
    assert f.response is not None
    page = f.response.text
    for text in ("Northgate District Court", "2-5678/2015", "2015-09-07",
                 "The &#34;Communications&#34; Act (example), s. 41",
                 '<a href="https://court.example/orders/2-5678-2015">'):
        assert text in page
    assert f.response.headers["content-type"].startswith("text/html")


def test_json_when_asked(tctx: taddons.context, addon: WritAddon) -> None:
    f = request(addon, "http://overlap.example/x", {"Accept": "application/json"})
    assert f.response is not None
    assert f.response.status_code == 451
    assert f.response.headers["content-type"].startswith("application/json")
    body = json.loads(f.response.content or b"")
    assert [o["id"] for o in body["orders"]] == ["ORD-A", "ORD-B"]
    assert body["blocked_by"]["transparency_url"] == "https://isp.example/blocking"
    assert body["orders"][0]["court"] == "District Court"


def test_hostile_order_text_is_escaped(tctx: taddons.context, addon: WritAddon) -> None:
    f = request(addon, "http://hostile.example/")
    assert f.response is not None
    page = f.response.text or ""
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page
    assert 'href="javascript:' not in page  # a non-http reference is text, not a link
    assert "javascript:alert(3)" in page


@pytest.mark.parametrize(("url", "host"), [
    ("http://allowed.example/", "blocked.example"),  # forged Host header
    ("http://blocked.example/", "allowed.example"),
    ("http://allowed.example/", "BLOCKED.example:8080"),
    ("http://allowed.example/watch?v=abc", "news.example"),  # URL rule via Host header
])
def test_every_name_is_judged(tctx: taddons.context, addon: WritAddon,
                              url: str, host: str) -> None:
    f = request(addon, url, {"Host": host})
    assert f.response is not None
    assert f.response.status_code == 451


def test_sni_of_an_intercepted_connection_is_judged(tctx: taddons.context,
                                                   addon: WritAddon) -> None:
    f = tflow.tflow()
    f.client_conn.tls = True
    f.client_conn.sni = "blocked.example"
    f.request.url = "https://allowed.example/"
    addon.requestheaders(f)
    assert f.response is not None
    assert f.response.status_code == 451


@pytest.mark.parametrize(("url", "headers", "why"), [
    ("http://news.example/watch%zz", {}, "percent"),
    ("http://news.example/a%2", {}, "percent"),
    ("http://allowed.example/", {"Host": "bad..name.example"}, "invalid host"),
    ("http://allowed.example/", {"Host": "blocked.example/path"}, "invalid host"),
    ("http://news.example/" + "a" * 20000, {}, "longer than"),  # a host with URL rules
])
def test_bad_input_gets_a_clear_400(tctx: taddons.context, addon: WritAddon, sink: MemorySink,
                                    url: str, headers: dict[str, str], why: str) -> None:
    f = request(addon, url, headers)
    assert f.response is not None
    assert f.response.status_code == 400
    assert why in (f.response.text or "")
    assert (sink.records[-1]["decision"], sink.records[-1]["action"]) == ("invalid", "400")


@pytest.mark.parametrize(("url", "headers"), [
    ("http://allowed.example/?q=100%", {}),
    ("http://allowed.example/" + "a" * 20000, {}),
    ("http://allowed.example/", {"Host": "xn--zz--.example"}),
    ("http://allowed.example/", {"Host": "foo-.other.example"}),
])
def test_hosts_without_rules_are_not_refused_for_what_writ_cannot_read(
        tctx: taddons.context, addon: WritAddon, url: str, headers: dict[str, str]) -> None:
    assert request(addon, url, headers).response is None


def test_allows_are_counted_but_recorded_only_when_asked(holder: BlocklistHolder) -> None:
    sink, metrics = MemorySink(), Metrics()
    addon = WritAddon(holder, policy(log_allowed=False), sink, metrics)
    with taddons.context(addon):
        request(addon, "http://notblocked.example/")
        request(addon, "http://blocked.example/")
    assert [r["decision"] for r in sink.records] == ["block"]
    assert metrics.decisions["http", "allow", "pass"] == 1
    assert metrics.decisions["http", "block", "451"] == 1
    assert metrics.by_order["http", "ORD-BLOCKED"] == 1


@pytest.mark.parametrize(("fail", "status"), [(FailMode.CLOSED, 503), (FailMode.OPEN, None)])
def test_no_blocklist_follows_the_fail_mode(fail: FailMode, status: int | None) -> None:
    from dataclasses import replace

    sink = MemorySink()
    addon = WritAddon(BlocklistHolder(), replace(policy(), fail=fail), sink)
    with taddons.context(addon):
        f = request(addon, "http://blocked.example/")
    assert (f.response.status_code if f.response else None) == status
    assert sink.records[-1]["decision"] == "no-blocklist"


class _BrokenHolder:
    """Stands in for a bug: its index has a version and no matcher, so judging
    raises (AttributeError) where a real index would decide."""

    class _Index:
        version = "v-broken"
        acts = ()

    index = _Index()


@pytest.mark.parametrize(("fail", "status", "action"),
                         [(FailMode.CLOSED, 503, "503"), (FailMode.OPEN, None, "pass")])
def test_a_bug_while_judging_follows_the_fail_mode_not_mitmproxy(
        fail: FailMode, status: int | None, action: str) -> None:
    from dataclasses import replace

    sink = MemorySink()
    addon = WritAddon(_BrokenHolder(), replace(policy(), fail=fail), sink)
    with taddons.context(addon):
        f = request(addon, "http://blocked.example/")
        data = hello("blocked.example")
        addon.tls_clienthello(data)
    assert (f.response.status_code if f.response else None) == status
    assert [(r["decision"], r["action"]) for r in sink.records] == [
        ("error", action), ("error", "tls-refused" if fail is FailMode.CLOSED else "pass")]
    assert data.ignore_connection is (fail is FailMode.OPEN)


def test_fails_closed_even_when_recording_the_error_fails_too() -> None:
    class BrokenSink(MemorySink):
        def record(self, **fields: object) -> None:
            raise OSError("disk gone")

    addon = WritAddon(_BrokenHolder(), policy(), BrokenSink())
    with taddons.context(addon):
        f = request(addon, "http://blocked.example/")
        data = hello("blocked.example")
        data.establish_server_tls_first = True  # as mitmproxy's tlsconfig may have set it
        addon.tls_clienthello(data)
        start = tls.TlsData(data.context.client, data.context)
        addon.tls_start_client(start)
    assert f.response is not None
    assert f.response.status_code == 503
    assert not data.ignore_connection
    assert not data.establish_server_tls_first  # the upstream is never dialled
    assert start.ssl_conn is not None  # and the client's handshake fails
    start.ssl_conn.bio_write(client_hello_bytes("blocked.example"))
    with pytest.raises(Exception, match="no shared cipher"):
        start.ssl_conn.do_handshake()


@pytest.mark.parametrize(("headers", "stream"), [
    ({"content-length": str(STREAM_THRESHOLD + 1), "content-type": "text/html"}, True),
    ({"content-length": "100", "content-type": "text/html"}, False),
    ({"content-length": "100", "content-type": "video/mp4"}, True),
    ({"transfer-encoding": "chunked", "content-type": "text/html"}, True),  # unknown size
])
def test_large_and_media_bodies_stream(tctx: taddons.context, addon: WritAddon,
                                       headers: dict[str, str], stream: bool) -> None:
    f = tflow.tflow(resp=True)
    f.response.headers.clear()
    for k, v in headers.items():
        f.response.headers[k] = v
    addon.responseheaders(f)
    assert bool(f.response.stream) is stream


# -- CONNECT and TLS --------------------------------------------------------


def connect(addon: WritAddon, host: str, port: int = 443) -> http.HTTPFlow:
    f = tflow.tflow()
    f.request = http.Request.make("CONNECT", f"http://{host}:{port}/")
    f.request.host, f.request.port = host, port
    addon.http_connect(f)
    return f


def test_connect_to_a_blocked_host_is_refused_with_451(tctx: taddons.context, addon: WritAddon,
                                                       sink: MemorySink) -> None:
    f = connect(addon, "www.blocked.example")
    assert f.response is not None
    assert f.response.status_code == 451
    assert sink.records[-1]["target"] == "CONNECT www.blocked.example:443"
    assert sink.records[-1]["orders"] == ["ORD-BLOCKED"]


@pytest.mark.parametrize("host", ["news.example", "videohost.example", "allowed.example"])
def test_connect_to_other_hosts_passes(tctx: taddons.context, addon: WritAddon,
                                       host: str) -> None:
    assert connect(addon, host).response is None


def test_tls_without_rules_is_not_intercepted(tctx: taddons.context, addon: WritAddon) -> None:
    d = hello("allowed.example")
    addon.tls_clienthello(d)
    assert d.ignore_connection


@pytest.mark.parametrize(("sni", "dest"), [
    ("blocked.example", None),
    ("www.blocked.example", "127.0.0.1"),  # transparent: the destination is an address
    ("allowed.example", "blocked.example"),  # CONNECT target blocked, SNI not
    (None, "blocked.example"),  # no SNI at all
])
def test_tls_to_a_blocked_host_is_refused(tctx: taddons.context, addon: WritAddon,
                                          sink: MemorySink, sni: str | None,
                                          dest: str | None) -> None:
    d = hello(sni, dest)
    d.establish_server_tls_first = True  # as mitmproxy's tlsconfig may have set it
    addon.tls_clienthello(d)
    assert not d.ignore_connection
    assert not d.establish_server_tls_first  # the upstream is never dialled
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["orders"]) == (
        "tls-refused", "tls-refused", ["ORD-BLOCKED"])
    # The handshake that follows fails: the client gets an alert, nothing else.
    start = tls.TlsData(d.context.client, d.context)
    addon.tls_start_client(start)
    assert start.ssl_conn is not None
    start.ssl_conn.bio_write(client_hello_bytes(sni))
    with pytest.raises(Exception, match="no shared cipher"):
        start.ssl_conn.do_handshake()


def test_tls_to_a_url_rules_host_is_unenforceable_without_interception(
        tctx: taddons.context, addon: WritAddon, sink: MemorySink) -> None:
    d = hello("news.example")
    addon.tls_clienthello(d)
    assert d.ignore_connection
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["orders"]) == (
        "unenforceable", "pass", ["ORD-NEWS"])
    assert rec["target"] == "TLS news.example"


def test_tls_to_a_url_rules_host_is_intercepted_when_the_policy_says_so(
        holder: BlocklistHolder) -> None:
    sink = MemorySink()
    addon = WritAddon(holder, policy(tls=TlsMode.INTERCEPT), sink)
    with taddons.context(addon):
        d = hello("news.example")
        addon.tls_clienthello(d)
        assert not d.ignore_connection  # intercepted
        assert sink.records == []  # the requests inside decide
        hosts_without_rules = hello("allowed.example")
        addon.tls_clienthello(hosts_without_rules)
        assert hosts_without_rules.ignore_connection
        # Inside TLS the URL rules apply as to plain HTTP.
        f = tflow.tflow()
        f.client_conn.tls, f.client_conn.sni = True, "news.example"
        f.request.url = "https://news.example/watch?t=1&v=abc"
        addon.requestheaders(f)
        assert f.response is not None
        assert f.response.status_code == 451
        f = tflow.tflow()
        f.client_conn.tls, f.client_conn.sni = True, "news.example"
        f.request.url = "https://news.example/other"
        addon.requestheaders(f)
        assert f.response is None


# -- options ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["emudhra", "emudhra_old"])
def test_refuses_to_start_with_emudhra_on(addon: WritAddon, name: str) -> None:
    with taddons.context(addon) as t:
        with pytest.raises(exceptions.OptionsError, match=name):
            t.options.add_option(name, bool, True, "stands in for mitmproxy's option")
        t.options.update(**{name: False})
        t.configure(addon)  # off: fine


def test_emudhra_off_is_fine(addon: WritAddon) -> None:
    with taddons.context(addon) as t:
        t.options.add_option("emudhra", bool, False, "stands in for mitmproxy's option")
        t.configure(addon)


def test_standalone_options_are_validated() -> None:
    from writ.mitmdump_node import Lifecycle

    addon = WritAddon()
    life = Lifecycle(addon)
    with taddons.context(life, addon) as t:
        with pytest.raises(exceptions.OptionsError, match="writ_orders, writ_redis"):
            t.configure(life, writ_orders="/nonexistent", writ_redis="redis://127.0.0.1:1")
        with pytest.raises(exceptions.OptionsError, match=r"writ_orders: .*nonexistent"):
            t.configure(life, writ_orders="/nonexistent/orders")
        # Unconfigured, the addon fails closed rather than letting traffic through.
        f = request(addon, "http://allowed.example/")
        assert f.response is not None
        assert f.response.status_code == 503


def test_holder_swaps_are_seen_on_the_next_request(tctx: taddons.context, addon: WritAddon) -> None:
    from tests.blocklist.builders import T0, act, domain
    from writ.blocklist import Blocklist

    assert request(addon, "http://later.example/").response is None
    addon.holder.set(Blocklist((act("LATER", targets=(domain("later.example"),)),)),
                     T0.replace(year=2016))
    f = request(addon, "http://later.example/")
    assert f.response is not None
    assert f.response.status_code == 451


def test_holder_fixture_is_fresh() -> None:
    assert make_holder().index is not None
