"""`writ audit report --html`: the auditor's report as one self-contained document.

`gather()` reads the logs (verify per node, one scan per node) and computes
the findings; `render()` turns that into one HTML page with inline CSS and
SVG charts (matplotlib), no script and no external request.
"""

from writ.audit.htmlreport.document import Document, InputFile, gather
from writ.audit.htmlreport.findings import Publish
from writ.audit.htmlreport.render import render

__all__ = ["Document", "InputFile", "Publish", "gather", "render"]
