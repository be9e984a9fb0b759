"""The pure core: orders → act folding → compiled index → decisions.

Imports none of writ.dns, writ.proxy, writ.web, writ.audit and no network
library. Other packages use only the names re-exported here.
"""

from writ.blocklist.canon import (
    CanonError,
    CanonicalURL,
    canonical_host,
    canonical_name,
    canonical_path,
    canonical_url,
    is_url,
    separator_reading,
)
from writ.blocklist.fold import Fold, InForce, KeptRule, fold, next_change
from writ.blocklist.holder import Blocklist, BlocklistHolder
from writ.blocklist.index import ALLOW, Decision, Index, Verdict
from writ.blocklist.loader import LoadResult, load_orders
from writ.blocklist.model import (
    Act,
    ActKind,
    BulkList,
    OrderError,
    Position,
    Target,
    TargetKind,
)
from writ.blocklist.serial import acts_from_json, acts_to_json, version_of

__all__ = [
    "ALLOW",
    "Act",
    "ActKind",
    "Blocklist",
    "BlocklistHolder",
    "BulkList",
    "CanonError",
    "CanonicalURL",
    "Decision",
    "Fold",
    "InForce",
    "Index",
    "KeptRule",
    "LoadResult",
    "OrderError",
    "Position",
    "Target",
    "TargetKind",
    "Verdict",
    "acts_from_json",
    "acts_to_json",
    "canonical_host",
    "canonical_name",
    "canonical_path",
    "canonical_url",
    "fold",
    "is_url",
    "load_orders",
    "next_change",
    "separator_reading",
    "version_of",
]
