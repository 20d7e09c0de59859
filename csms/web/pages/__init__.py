"""Page routers, one module per area (see `csms.web.mount.PAGE_MODULES`)."""
