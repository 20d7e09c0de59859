"""Meter register profiles by name. The built-in profiles follow each maker's published register
map (devices.md); a site file may name only these (or, once supported, its own custom ones)."""

from __future__ import annotations

BUILTIN_PROFILES: tuple[str, ...] = (
    "eastron-sdm630",
    "eastron-sdm72d-m",
    "eastron-sdm120",
    "abb-b23",
    "carlo-gavazzi-em24",
    "inepro-pro380",
)
