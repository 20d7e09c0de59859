"""One module per resource; each exposes `router`, listed in csms.api.app.ROUTER_MODULES."""
