"""Load management: wallboxes share what the building's grid connection leaves free.

`allocation` decides (pure), `settings` reads the site's `load:` section, `controller` measures
and applies (the building meter, the stations' charging profiles), `grid_limits` holds the grid
operator's temporary limits (§14a EnWG).
"""
