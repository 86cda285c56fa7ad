"""Server-rendered pages (aiohttp-jinja2 templates in `templates/pages/`, assets in `static/`).

Pages run under the app's strict CSP: no inline script or style, no third-party origins. Their
state lives in a page session (`web.session`); every form carries a CSRF token (`web.csrf`).
"""
