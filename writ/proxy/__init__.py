"""HTTP enforcement: the mitmproxy addon and the runner that hosts it.

`writ proxy` and `writ serve` call `run_proxy()`; `mitmdump -s
writ/proxy/mitmdump_addon.py` loads the addon on its own (see that file).
"""

from writ.proxy.addon import STREAM_THRESHOLD, WritAddon
from writ.proxy.judge import judge_names, judge_request
from writ.proxy.runner import ProxyHandle, ProxyStartError, check_mode, ensure_ca, run_proxy
from writ.proxy.steer import SteerKind

__all__ = [
    "STREAM_THRESHOLD",
    "ProxyHandle",
    "ProxyStartError",
    "SteerKind",
    "WritAddon",
    "check_mode",
    "ensure_ca",
    "judge_names",
    "judge_request",
    "run_proxy",
]
