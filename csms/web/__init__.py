"""The web pages for residents, owners and installers: server-rendered, de and en, no CDN."""
