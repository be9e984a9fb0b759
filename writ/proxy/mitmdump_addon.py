"""One-line shim for `mitmdump -s writ/proxy/mitmdump_addon.py --set writ_orders=DIR`.

mitmproxy's script loader puts this folder on sys.path, which is why no
module in writ/proxy/ is named after a third-party package.
"""

from writ.proxy.addon import WritAddon

addons = [WritAddon()]
