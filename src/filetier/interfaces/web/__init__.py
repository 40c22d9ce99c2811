"""The web console served by ``filetier serve`` at ``/``: server-side pages for people.

::

    app.py        console_routes(runtime): the routes, templates and static files
    guard.py      session -> owner (the API's resolver), CSRF, operator-only, page headers
    sessions.py   server-side sessions and CSRF tokens
    views.py      the pages: files and a file (Pages, with the two below mixed in)
    overview.py   the overview page: statistics, tier charts, provider quota use
    maintenance.py  the operators' maintenance pages: verify, cleanup, gc
    charts.py     bar and gauge charts as SVG geometry
    templates/    Jinja2 templates (autoescaped)
    static/       console.css and console.js: the only style and script (strict CSP)

The HTTP app mounts it with ``filetier.interfaces.web.app.console_routes(runtime)``.
"""
