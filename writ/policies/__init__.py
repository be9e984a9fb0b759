"""Enforcement policies: the operator's settings (YAML lives in ../policies/)."""

from writ.policies._checks import format_endpoint, parse_endpoint
from writ.policies.loader import PolicyError, load_policy, parse_policy
from writ.policies.model import (
    AuditPolicy,
    ClientPrivacy,
    DnsAction,
    DnsPolicy,
    FailMode,
    IcapPolicy,
    IpPolicy,
    OverLimit,
    PagesPolicy,
    Policy,
    ProxyPolicy,
    PublishPolicy,
    TlsMode,
    TrustPolicy,
    UrlRuleMode,
    WebPolicy,
)

__all__ = [
    "AuditPolicy",
    "ClientPrivacy",
    "DnsAction",
    "DnsPolicy",
    "FailMode",
    "IcapPolicy",
    "IpPolicy",
    "OverLimit",
    "PagesPolicy",
    "Policy",
    "PolicyError",
    "ProxyPolicy",
    "PublishPolicy",
    "TlsMode",
    "TrustPolicy",
    "UrlRuleMode",
    "WebPolicy",
    "format_endpoint",
    "load_policy",
    "parse_endpoint",
    "parse_policy",
]
