"""writ — court-order enforcement at an ISP's network edge."""

__version__ = "0.1.0"
