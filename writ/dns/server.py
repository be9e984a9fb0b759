"""The resolver: an asyncio shell around the index, the answer builders and the cache.

Invariants:
- Every query reads `holder.index` once and is decided under that index; the
  cache is emptied on every swap (holder.on_swap) and refuses entries decided
  under an older index, so nothing stale is served after a change.
- Fast path (`answer_fast`), for a plain query from an allowed client, in
  three steps, none of which parses with dnslib:
  1. `memo`: the exact datagram (after its ID) seen before → the whole answer
     after the ID, valid until a time; only the ID is patched. Emptied on every
     swap with the cache. UDP only (the key holds the EDNS buffer size).
  2. the cache, by wire key (case-folded question, RD/CD, EDNS state): the ID
     and question are copied from the query into the prebuilt body.
  3. a cache miss on a blocked (or steered) name: the answer is built from
     bytes (writ.dns.synth), cached and memoised.
  Anything else goes to `answer`, which never raises: unparseable input gets
  FORMERR when the header is readable, silence otherwise.
- TTLs: a memo entry of an upstream answer lives only until its TTLs would
  age by another second (then step 2 re-stamps it), so answers carry exactly
  the TTLs the cache has always served (whole seconds of age, rounded down);
  the memo trades no TTL accuracy for speed.
- Every decision, cache hit or not, allows included, goes to the one
  recorder (writ.audit.Recorder), which counts it and keeps it for the log
  (allows only when policy.audit.log_allowed).
- Upstream failure is SERVFAIL, never NXDOMAIN, with an EDE saying why
  (22 no reachable authority, 23 network error; 0 "overloaded" when shed).
- One mapping from decision to answer (`plan`) serves the fast and the full
  path: they differ only in how the bytes are built (synth vs dnslib).
- Every answer echoes its own client's question bytes (0x20 letter case),
  whether it came from the cache, a merged miss or an upstream that changed
  the spelling.
- Upstream answers are sanitised before they are cached or served: AA
  cleared, TTLs cleaned (wire.clean_reply), records owned by a blocked name
  removed, and a CNAME or DNAME (RFC 6672) leading to a blocked name blocks
  the whole answer.
- Response-IP policy (docs/design.md §6): an A or AAAA record in the answer
  section inside a blocked address or prefix blocks the whole answer with the
  policy's action, its EDE 16 naming every order whose rule holds any of the
  answer's blocked addresses (writ.dns.respip). The cache is emptied on every
  swap, so a cached answer is judged again under the new blocklist.
- Client input never produces a traceback: illegal names, two OPT records or
  a TSIG are FORMERR, logged as one rate-limited line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, NamedTuple

from dnslib import QTYPE, RCODE, RR, DNSRecord

from writ.audit import Action, Component, Counts, Outcome, Recorder, RecordSink
from writ.blocklist import Decision, Index, Verdict
from writ.dns import answers
from writ.dns.acl import ClientACL
from writ.dns.answers import EdnsInfo
from writ.dns.cache import FOREVER, AnswerCache, Entry, LogLine
from writ.dns.ede import NETWORK_ERROR, NO_REACHABLE_AUTHORITY, OPTION_EDE, OTHER
from writ.dns.limits import ClientRate, fd_budget
from writ.dns.names import decide_labels, display_name
from writ.dns.respip import answer_addresses_decision
from writ.dns.screen import UnusableError, chain_hops, malformed
from writ.dns.sde import Structured
from writ.dns.synth import Synth, wire_name
from writ.dns.upstream import Failure, Upstream, build_query
from writ.dns.wire import (
    Query,
    add_opt,
    clean_reply,
    header_reply,
    opt_record,
    parse_query,
    plain_reply,
)
from writ.endpoints import split_hostport
from writ.policies import DnsPolicy, FailMode, Policy, UrlRuleMode

__all__ = ["DnsServer", "Plan", "plan"]

log = logging.getLogger("writ.dns")

_OPT = 41
_STEERED_TYPES = (QTYPE.A, QTYPE.AAAA, QTYPE.SVCB, QTYPE.HTTPS)
MAX_SLOW_TASKS = 10_000  # beyond this a flood gets SERVFAIL + EDE instead of unbounded memory
_LOG_EVERY = 10.0  # seconds between two log lines about bad client input
_EDE_UPSTREAM = {Failure.TIMEOUT: (NO_REACHABLE_AUTHORITY, "no upstream answered in time"),
                 Failure.NETWORK: (NETWORK_ERROR, "upstream unreachable or answered garbage"),
                 Failure.SHED: (OTHER, "resolver overloaded: query shed")}
MemoHit = tuple[bytes, float, "LogLine | None"]
_TYPE_NAMES: dict[int, str] = {}


class Plan(NamedTuple):
    """What to answer for a decision: `kind` block | steer | forward, and the log fields."""

    kind: str
    decision: Outcome
    action: Action


_FORWARD_ALLOW = Plan("forward", Outcome.ALLOW, Action.PASS)
_FORWARD_URL_RULES = Plan("forward", Outcome.URL_RULES, Action.PASS)
_STEER = Plan("steer", Outcome.STEER, Action.STEER)
_BLOCK_PLANS = {a.value: Plan("block", Outcome.BLOCK, a) for a in Action}


def plan(d: Decision, qtype: int, dns: DnsPolicy) -> Plan:
    """The one mapping from a decision to an answer, for the fast and the full path."""
    if d.decision is Verdict.BLOCK:
        return _BLOCK_PLANS[str(dns.action)]
    if d.decision is Verdict.URL_RULES:
        if dns.url_rules == UrlRuleMode.STEER and qtype in _STEERED_TYPES:
            return _STEER
        return _FORWARD_URL_RULES
    return _FORWARD_ALLOW


def _type_name(qtype: int) -> str:
    name = _TYPE_NAMES.get(qtype)
    if name is None:
        name = str(QTYPE.get(qtype, str(qtype)))
        if len(_TYPE_NAMES) < 1024:
            _TYPE_NAMES[qtype] = name
    return name


class DnsServer:
    """Answers queries (bytes in, bytes out); the sockets live in writ.dns.transport."""

    def __init__(
        self,
        holder: Any,  # BlocklistHolder: .index, .on_swap
        policy: Policy,
        sink: RecordSink | None,
        upstream: Upstream | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        metrics: Counts | None = None,
    ) -> None:
        self.holder = holder
        self.policy = policy
        self.dns = policy.dns
        self.recorder = Recorder(sink, log_allowed=policy.audit.log_allowed, metrics=metrics)
        # log_decision(client, line): one call per decision, allows included.
        self.log_decision: Callable[[str, LogLine], None] = self.recorder.liner(Component.DNS)
        # File descriptors: upstream sockets and TCP clients share the limit, with a
        # reserve for the store (writ.dns.limits.fd_budget).
        self.upstream_fds, self.tcp_fds = fd_budget(self.dns.upstream_queries,
                                                    self.dns.max_tcp_conns)
        self.upstream = upstream or Upstream(
            [split_hostport(u, 53) for u in self.dns.upstreams], self.dns.upstream_timeout,
            self.upstream_fds)
        self.cache = AnswerCache(self.dns.cache_size)
        self.acl = ClientACL(self.dns.allow_clients)
        # Queries refused by the ACL: not court-order decisions, so not in the audit
        # chain (a flood must not bloat it), but counted for /metrics.
        self.refused_clients = 0
        self.no_blocklist = 0  # queries met before any blocklist was loaded (fail mode applied)
        self.formerr = 0  # client input we could not answer (illegal names, two OPT, TSIG, …)
        self.servfail = 0  # upstream failures answered SERVFAIL + EDE 22/23
        self.shed = 0  # queries shed under load (SERVFAIL + EDE 0), never silently
        self.stripped = 0  # upstream records owned by a blocked name, removed
        self.rate = ClientRate(self.dns.client_qps, self.dns.over_limit)  # UDP, per client
        self._bad_logged = 0.0  # when the last bad-input line was logged
        self._bad_since = 0  # bad inputs not logged since
        self.max_udp = self.dns.max_udp_size
        self.structured = Structured.of(policy)  # EDE JSON for queries that opt in
        self.synth = Synth(self.dns, self.structured)
        # Exact datagram (after the ID) → (reply after the ID, valid until, log line).
        self.memo: dict[bytes, MemoHit] = {}
        self._memo_size = max(1, self.dns.cache_size)
        self.clock = clock
        self.tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[bytes, asyncio.Future[bytes | Failure]] = {}
        holder.on_swap(self._swapped)

    def _swapped(self, _index: Index) -> None:
        self.cache.clear()  # bumps the generation first: in-flight puts fail
        self.memo = {}

    def stats(self) -> dict[str, float]:
        """Counters for /metrics (docs/operator.md lists them)."""
        return {
            "dns_refused_clients": float(self.refused_clients),
            "dns_no_blocklist": float(self.no_blocklist),
            "dns_formerr": float(self.formerr),
            "dns_servfail_upstream": float(self.servfail),
            "dns_shed": float(self.shed),
            "dns_stripped_records": float(self.stripped),
            "dns_rate_limited": float(self.rate.limited),
            "dns_upstream_in_flight": float(self.upstream.in_flight),
        }

    def shed_reply(self, data: bytes) -> bytes | None:
        """SERVFAIL + EDE 0 for a query we have no room for (counted, never silent)."""
        self.shed += 1
        q = parse_query(data)
        if q is None:
            return header_reply(data, RCODE.SERVFAIL)
        text = _EDE_UPSTREAM[Failure.SHED][1].encode()
        ede = (OPTION_EDE.to_bytes(2, "big") + (2 + len(text)).to_bytes(2, "big")
               + OTHER.to_bytes(2, "big") + text)
        return plain_reply(data, q, RCODE.SERVFAIL, opt_record(q.do, ede) if q.edns else b"")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> bool:
        if len(self.tasks) >= MAX_SLOW_TASKS:
            coro.close()
            return False
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return True

    # -- fast path -----------------------------------------------------------

    def answer_fast(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        """The answer from the memo, the cache or a byte-built block; None: call `answer`."""
        if not self.acl.allowed(client):
            return None
        memo = self.memo  # taken first: a swap replaces it, so nothing older lands in the new one
        if not tcp:
            hit = memo.get(data[2:])
            if hit is not None and self.clock() < hit[1]:
                if hit[2] is not None:
                    self.log_decision(client, hit[2])
                return data[:2] + hit[0]
        q = parse_query(data)
        if q is None:
            return None
        gen = self.cache.generation  # read before the index: a swap in between fails put()
        now = self.clock()
        limit = 65535 if tcp else min(q.limit, self.max_udp)
        e = self.cache.get(q.key, now)
        if e is None:
            return self._synthesise(data, q, client, tcp, gen, limit)
        body = e.body_at(now) if e.ttls else e.body
        if e.log is not None:
            self.log_decision(client, e.log)
        if len(body) > limit:  # RFC 1035 §4.1.1: TC, the question, and the client retries on TCP
            return plain_reply(data, q, 0x0200 | (body[3] & 0xF),
                               opt_record(q.do) if q.edns else b"")
        qend = q.qend
        out = body[2:12] + data[12:qend] + body[qend:]
        if not tcp and gen == self.cache.generation:
            # Serve this exact packet from the memo until its TTLs would age by a second.
            until = min(e.expires, e.stored + int(now - e.stored) + 1) if e.ttls else e.expires
            self._remember(memo, data, out, until, e.log)
        return data[:2] + out

    def _synthesise(self, data: bytes, q: Query, client: str, tcp: bool,  # noqa: PLR0917 (private helper of one caller)
                    gen: int, limit: int) -> bytes | None:
        """A block or steer answer built from bytes, or None (forward, or unusual: full path)."""
        index = self.holder.index
        if index is None:
            return None
        name = wire_name(data, q.qend)
        if name is None:
            return None
        d = index.decide_canonical_name(name)
        p = plan(d, q.qtype, self.dns)
        if p.kind == "block":
            body: bytes | None = self.synth.blocked(data, q, d.orders, limit)
        elif p.kind == "steer":
            body = self.synth.steered(data, q)
        else:
            return None
        if body is None or len(body) > limit:
            return None
        line = LogLine(f"{name}. {_type_name(q.qtype)}", p.decision, p.action, d.orders, d.rule,
                       index.version)
        self.log_decision(client, line)
        memo = self.memo
        if self.cache.put(q.key, Entry(body, line), gen) and not tcp:
            self._remember(memo, data, body[2:], FOREVER, line)
        return data[:2] + body[2:]

    def _remember(self, memo: dict[bytes, MemoHit], data: bytes, out: bytes, until: float,
                  line: LogLine | None) -> None:
        if len(memo) >= self._memo_size:
            memo.clear()  # cheaper than LRU bookkeeping on every hit; refills from the cache
        memo[data[2:]] = (out, until, line)

    # -- full path -----------------------------------------------------------

    async def answer(self, data: bytes, client: str, tcp: bool) -> bytes | None:
        try:
            return await self._answer(data, client, tcp)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("writ.dns.internal_error client=%s", client)
            return header_reply(data, RCODE.SERVFAIL)

    def _closed_without_blocklist(self) -> bool:
        """No blocklist loaded yet: counted (/metrics), and True when the policy fails closed."""
        self.no_blocklist += 1
        return self.policy.fail == FailMode.CLOSED

    def _bad_input(self, client: str, why: str) -> None:
        """Count bad client input; log one line at most every _LOG_EVERY seconds."""
        self.formerr += 1
        now = self.clock()
        if now - self._bad_logged < _LOG_EVERY:
            self._bad_since += 1
            return
        log.warning("writ.dns.formerr client=%s reason=%s (%d more since the last line)",
                    client, why, self._bad_since)
        self._bad_logged, self._bad_since = now, 0

    async def _answer(self, data: bytes, client: str, tcp: bool) -> bytes | None:  # noqa: PLR0911 (one guard clause per RFC rule reads best)
        request = answers.parse_request(data)
        if request is None:
            reply = header_reply(data, RCODE.FORMERR)
            if reply is not None:
                self._bad_input(client, "unparseable message")
            return reply
        h = request.header
        if h.qr:
            return None  # never answer an answer
        edns = answers.edns_of(request)
        if not self.acl.allowed(client):
            self.refused_clients += 1
            return answers.prohibited(request, edns)
        if h.opcode != 0:
            return answers.error(request, RCODE.NOTIMP, edns)
        why = malformed(request)
        if why is not None:
            self._bad_input(client, why)
            return header_reply(data, RCODE.FORMERR)
        if edns.present and edns.version != 0:
            return answers.error(request, 16, edns)  # BADVERS, RFC 6891 §6.1.3
        if request.q.qclass != 1:
            return answers.error(request, RCODE.REFUSED, edns)
        wq = parse_query(data)
        gen = self.cache.generation  # read before the index: a swap in between fails put()
        index = self.holder.index
        if index is None and self._closed_without_blocklist():
            return answers.error(request, RCODE.SERVFAIL, edns)
        labels = request.q.qname.label
        d = decide_labels(index, labels) if index is not None else Decision(Verdict.ALLOW)
        version = index.version if index is not None else None
        qtype = request.q.qtype
        target = f"{display_name(labels)} {_type_name(qtype)}"
        limit = min(edns.limit(tcp), 65535 if tcp else self.max_udp)
        p = plan(d, qtype, self.dns)
        line = LogLine(target, p.decision, p.action, d.orders, d.rule, version)
        if p.kind == "block":
            body, _ = answers.blocked(request, d, self.dns, edns, limit,
                                      structured=self.structured)
            return self._finish(request, wq, gen, Entry(body, line), edns, limit, client)
        if p.kind == "steer":
            body = answers.steered(request, self.dns, edns)
            return self._finish(request, wq, gen, Entry(body, line), edns, limit, client)
        return await self._forward(request, data, wq, gen, index, edns, limit, client, target,
                                   line)

    def _finish(self, request: DNSRecord, wq: Query | None, gen: int, entry: Entry,  # noqa: PLR0917 (private helper of one caller)
                edns: EdnsInfo, limit: int, client: str) -> bytes:
        if entry.log is not None:
            self.log_decision(client, entry.log)
        if wq is not None:
            self.cache.put(wq.key, Entry(b"\0\0" + entry.body[2:], entry.log,
                                         entry.stored, entry.expires, entry.ttls), gen)
        body: bytes = entry.body
        if len(body) > limit:
            return answers.truncated(request, edns, body[3] & 0xF)
        return body

    async def _forward(self, request: DNSRecord, data: bytes, wq: Query | None, gen: int,  # noqa: PLR0917 (private helper of one caller)
                       index: Index | None, edns: EdnsInfo, limit: int, client: str,
                       target: str, line: LogLine | None) -> bytes:
        # The question as the client sent it (its letter case echoed back), or re-encoded.
        question = data[12 : wq.qend] if wq else bytes(DNSRecord(q=request.q).pack())[12:]
        flags = (request.header.rd << 8) | (request.header.cd << 4)
        query = build_query(question, flags, edns.present, edns.do)
        got = await self._resolve(wq.key if wq else None, query)
        cleaned = clean_reply(got, self.dns.max_ttl) if isinstance(got, bytes) else None
        parsed = answers.parse_request(cleaned[0]) if cleaned is not None else None
        if cleaned is None or parsed is None:
            failure = got if isinstance(got, Failure) else Failure.NETWORK
            if failure is Failure.SHED:
                self.shed += 1
            else:
                self.servfail += 1
            if line is not None:
                self.log_decision(client, line._replace(action=Action.SERVFAIL))
            code, text = _EDE_UPSTREAM[failure]
            return answers.servfail(request, edns, code, text)
        reply, ttls, negative, rcode = cleaned
        if index is not None:
            try:
                blocked = (self._chain_block(request, parsed, index, edns, limit, target)
                           or self._address_block(request, parsed, index, edns, limit, target))
            except UnusableError as e:
                self.servfail += 1
                return answers.servfail(request, edns, NETWORK_ERROR, str(e))
            if blocked is not None:
                return self._finish(request, wq, gen, blocked, edns, limit, client)
            kept = self._strip_blocked(parsed, index)
            if kept is not None:
                reply = kept
                walk = clean_reply(reply, self.dns.max_ttl)
                if walk is None:
                    return answers.servfail(request, edns, NETWORK_ERROR, "unusable answer")
                reply, ttls, negative, rcode = walk
        if line is not None:
            self.log_decision(client, line)
        if edns.present and not any(rr.rtype == QTYPE.OPT for rr in parsed.ar):
            reply = add_opt(reply, edns.do)  # an EDNS-unaware upstream; RFC 6891 §7
        # Our client's own question bytes, whatever spelling the upstream (or the first
        # of several merged clients) used: same length, matched case-insensitively.
        reply = reply[:12] + question + reply[12 + len(question):]
        self._cache_upstream(reply, parsed, wq, gen, line, ttls, negative, rcode)
        out: bytes = int(request.header.id).to_bytes(2, "big") + reply[2:]
        if len(out) > limit:
            return answers.truncated(request, edns, reply[3] & 0xF)
        return out

    def _chain_block(self, request: DNSRecord, parsed: DNSRecord, index: Index,  # noqa: PLR0917 (private helper of one caller)
                     edns: EdnsInfo, limit: int, target: str) -> Entry | None:
        """The block answer when a CNAME or DNAME in the answer leads to a blocked name."""
        qname = tuple(x.lower() for x in request.q.qname.label)
        for rr in parsed.rr:
            for hop in chain_hops(rr, qname):
                d = decide_labels(index, hop)
                if d.decision is Verdict.BLOCK:
                    body, action = answers.blocked(request, d, self.dns, edns, limit,
                                      structured=self.structured)
                    via = f"{d.rule} (via {QTYPE.get(rr.rtype)} {display_name(hop)})"
                    line = LogLine(target, Outcome.BLOCK, Action(action), d.orders, via,
                                   index.version)
                    return Entry(body, line)
        return None

    def _address_block(self, request: DNSRecord, parsed: DNSRecord, index: Index,  # noqa: PLR0917 (private helper of one caller)
                       edns: EdnsInfo, limit: int, target: str) -> Entry | None:
        """The block answer when an A/AAAA of the answer lies in a blocked prefix."""
        d = answer_addresses_decision(parsed, index)
        if d is None:
            return None
        body, action = answers.blocked(request, d, self.dns, edns, limit)
        return Entry(body, LogLine(target, Outcome.BLOCK, Action(action), d.orders, d.rule,
                                   index.version))

    def _strip_blocked(self, parsed: DNSRecord, index: Index) -> bytes | None:
        """The answer re-packed without records owned by a blocked name; None: none found."""
        def keep(rr: RR) -> bool:
            labels = rr.rname.label
            return rr.rtype == _OPT or not labels or (
                decide_labels(index, labels).decision is not Verdict.BLOCK)

        sections = (parsed.rr, parsed.auth, parsed.ar)
        kept = [[rr for rr in sec if keep(rr)] for sec in sections]
        removed = sum(len(a) - len(b) for a, b in zip(sections, kept, strict=True))
        if not removed:
            return None
        self.stripped += removed
        parsed.rr, parsed.auth, parsed.ar = kept
        return bytes(parsed.pack())

    async def _resolve(self, key: bytes | None, query: bytes) -> bytes | Failure:
        """Ask upstream once for concurrent identical misses (a cold cache under load)."""
        if key is None:
            return await self.upstream.resolve(query)
        waiting = self._inflight.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        fut: asyncio.Future[bytes | Failure] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        reply: bytes | Failure = Failure.NETWORK
        try:
            reply = await self.upstream.resolve(query)
        finally:
            fut.set_result(reply)
            del self._inflight[key]
        return reply

    def _cache_upstream(self, reply: bytes, parsed: DNSRecord, wq: Query | None, gen: int,  # noqa: PLR0917 (private helper of one caller)
                        line: LogLine | None, ttls: list[tuple[int, int]], negative: int | None,
                        rcode: int) -> None:
        if wq is None:
            return
        if rcode == RCODE.NOERROR and parsed.rr:
            ttl: int | None = min((t for _, t in ttls), default=None)
        elif rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
            ttl = negative  # RFC 2308 §5: no SOA, no negative caching
        else:
            return  # SERVFAIL, REFUSED, …: not cached
        if not ttl or ttl <= 0:
            return
        now = self.clock()
        entry = Entry(b"\0\0" + reply[2:], line, now, now + ttl, ttls)
        self.cache.put(wq.key, entry, gen)
