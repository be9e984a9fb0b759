"""One-line shim for `mitmdump -s writ/proxy/mitmdump_addon.py --set writ_orders=DIR`.

mitmproxy's script loader puts this folder on sys.path, which is why no
module in writ/proxy/ is named after a third-party package. Two addons: the
lifecycle (options → holder, policy, audit log) and the enforcing addon
(which carries the steer listeners' addon inside it).
"""

from writ.proxy.addon import WritAddon
from writ.proxy.lifecycle import Lifecycle

_writ = WritAddon()
addons = [Lifecycle(_writ), _writ]
