"""Site inventory: sites, buildings, tariffs and stations, and the site file that describes them."""
