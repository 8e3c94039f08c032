"""The officer and operator web console, served by the hub (``[hub] console_listen``).

- :mod:`rmas.console.app`: :class:`~rmas.console.app.WebConsole`, the aiohttp server the hub
  starts and stops with itself: identity, headers, routes.
- :mod:`rmas.console.identity`: who the browser is (its client certificate's ``rmas://``
  identity, mapped to a role by ``[[callers]]``), and what that role may do.
- :mod:`rmas.console.views`: the pages: check a document (fields or MRZ), find a check, the
  hub's status (live).
- :mod:`rmas.console.trail`: the audit trail's read side, as the console calls it.

Server-rendered Jinja2 templates (``templates/``), one small script and one stylesheet
(``static/``): no build step, nothing fetched from elsewhere. See docs/console.md.
"""
