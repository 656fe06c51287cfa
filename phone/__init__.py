"""vphone: an emulated Cisco IP-phone firmware trust engine."""

from __future__ import annotations

__version__ = "0.1.0"
