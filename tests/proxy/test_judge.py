"""The verdict as a pure function: facts in, one outcome out, for every kind."""

from __future__ import annotations

import pytest

from tests.proxy.conftest import make_holder
from writ.proxy.judge import Facts, Kind, judge

INDEX = make_holder().index
KEPT = "/v/136071201"


@pytest.mark.parametrize(("facts", "decision", "action"), [
    # requests: every name, hosts first, paths only where URL rules are
    (Facts(Kind.REQUEST, ("blocked.example",), "/"), "block", "451"),
    (Facts(Kind.REQUEST, ("127.0.0.1:8080", None, "videohost.example"), KEPT), "block", "451"),
    (Facts(Kind.REQUEST, ("other.example", "videohost.example"), KEPT), "block", "451"),
    (Facts(Kind.REQUEST, ("videohost.example",), "/v%2F136071201"), "block", "451"),
    (Facts(Kind.REQUEST, ("videohost.example",), "/v/136071201;x=1"), "block", "451"),
    (Facts(Kind.REQUEST, ("videohost.example",), "/v/1"), "allow", "pass"),
    (Facts(Kind.REQUEST, ("videohost.example",), "/v/%zz"), "invalid", "400"),
    (Facts(Kind.REQUEST, ("fine.example",), "/v/%zz"), "allow", "pass"),
    (Facts(Kind.REQUEST, ("foo-.fine.example",), "/"), "allow", "pass"),
    (Facts(Kind.REQUEST, ("x.example/y",), "/"), "invalid", "400"),
    (Facts(Kind.REQUEST, ("fine.example",), "/", invalid="obs-fold"), "invalid", "400"),
    # CONNECT, TLS, raw bytes: the refusal that fits the kind
    (Facts(Kind.CONNECT, ("blocked.example",)), "block", "451"),
    (Facts(Kind.CONNECT, ("news.example",)), "url-rules", "pass"),
    (Facts(Kind.CONNECT, ("fine.example",)), "allow", "pass"),
    (Facts(Kind.TLS, ("www.blocked.example", "127.0.0.1")), "tls-refused", "tls-refused"),
    (Facts(Kind.TLS, ("news.example",)), "unenforceable", "pass"),
    (Facts(Kind.TLS, ("fine.example",)), "allow", "pass"),
    (Facts(Kind.TCP, ("news.example",)), "unenforceable", "closed"),
    (Facts(Kind.TCP, ("blocked.example",)), "block", "closed"),
    (Facts(Kind.TCP, ("127.0.0.1",)), "allow", "raw-tcp"),
    (Facts(Kind.TCP, ("::1",)), "allow", "raw-tcp"),
])
def test_outcomes(facts: Facts, decision: str, action: str) -> None:
    out = judge(INDEX, facts)
    assert (out.decision, out.action) == (decision, action)


def test_intercepted_tls_leaves_urls_to_the_requests_inside() -> None:
    out = judge(INDEX, Facts(Kind.TLS, ("news.example",)), intercept=True)
    assert (out.decision, out.action) == ("url-rules", "intercept")


@pytest.mark.parametrize(("kind", "closed"), [(Kind.REQUEST, "503"), (Kind.CONNECT, "503"),
                                              (Kind.TLS, "tls-refused"), (Kind.TCP, "closed")])
def test_no_blocklist_follows_the_fail_mode(kind: Kind, closed: str) -> None:
    facts = Facts(kind, ("fine.example",))
    assert judge(None, facts)[:2] == ("no-blocklist", closed)
    assert judge(None, facts, fail_open=True)[:2] == ("no-blocklist", "pass")


def test_a_block_names_every_order_behind_every_name() -> None:
    out = judge(INDEX, Facts(Kind.REQUEST, ("overlap.example", "blocked.example"), "/"))
    assert out.d is not None
    assert out.d.orders == ("ORD-A", "ORD-B", "ORD-BLOCKED")
