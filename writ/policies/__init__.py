"""Enforcement policies: the operator's settings (YAML lives in ../policies/)."""

from writ.policies.model import (
    AuditPolicy,
    ClientPrivacy,
    DnsAction,
    DnsPolicy,
    FailMode,
    Policy,
    ProxyPolicy,
    TlsMode,
    UrlRuleMode,
    WebPolicy,
)

__all__ = [
    "AuditPolicy",
    "ClientPrivacy",
    "DnsAction",
    "DnsPolicy",
    "FailMode",
    "Policy",
    "ProxyPolicy",
    "TlsMode",
    "UrlRuleMode",
    "WebPolicy",
]
