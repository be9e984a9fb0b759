"""One-line shim for `mitmdump -s writ/proxy/mitmdump_addon.py --set writ_orders=DIR`.

mitmproxy's script loader puts this folder on sys.path, which is why no
module in writ/proxy/ is named after a third-party package. Two addons: the
lifecycle (writ.mitmdump_node: options → a node's holder, policy and audit
log) and the enforcing addon (which carries the steer listeners' addon
inside it). This script is an entry point, like writ.cli: the node it
starts lives outside the proxy shell.
"""

from writ.mitmdump_node import Lifecycle
from writ.proxy.addon import WritAddon

_writ = WritAddon()
addons = [Lifecycle(_writ), _writ]
