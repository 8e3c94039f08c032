"""The web console's server: an aiohttp application on the hub's event loop.

Started and stopped by :class:`~rmas.server.app.HubServer` when ``[hub] console_listen`` is set.
Under ``[tls]`` it serves HTTPS and requires a client certificate from the hub's CA (the same
:meth:`~rmas.security.tls.TlsConfig.server_ssl_context` the SLTD-style service uses); without it
plain HTTP on a loopback address (the hub checks the address: ``hub.console_listen``).

Every response leaves with ``Cache-Control: no-store`` (the static files excepted), a content
security policy that allows only this origin's script and stylesheet, no framing and no
referrer to other sites. A POST from another site is refused (a page elsewhere cannot make an
officer's browser run a check). Nothing a visitor typed is logged or put in a URL: forms are
POSTed and answered in place; the log has the page's route, the status and the visitor's
identity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web

from rmas.console.identity import Refused, Visitor, visitor_of
from rmas.console.views import VISITOR, Pages, cells
from rmas.errors import ConfigError
from rmas.net import parse_listen

if TYPE_CHECKING:
    from rmas.server.app import HubServer

__all__ = ["WebConsole"]

log = structlog.get_logger("rmas.console")

HERE = Path(__file__).resolve().parent

_HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebConsole:
    """The console of one hub (see the module docstring)."""

    def __init__(self, server: HubServer, *, refresh_s: float = 1.0) -> None:
        self.server = server
        self.listen = server.config.console_listen
        self.port = 0
        self.pages = Pages(server, refresh_s=refresh_s)
        self.app = self._build()
        self._runner: web.AppRunner | None = None

    def _build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024)
        aiohttp_jinja2.setup(
            app,
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            trim_blocks=True,
            lstrip_blocks=True,
            undefined=jinja2.StrictUndefined,
            auto_reload=False,  # templates are part of the installed package
        )
        env = aiohttp_jinja2.get_env(app)
        env.filters["cells"] = cells
        self.pages.env = env
        self.pages.add_routes(app.router)
        app.router.add_static("/static", HERE / "static", name="static")
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/static/"):
            return await handler(request)
        who = self._visitor(request)
        response: web.StreamResponse
        if isinstance(who, Refused):
            log.warning("console_refused", reason=who.message)
            response = self.pages.refusal(who.message)
        elif request.method == "POST" and not _same_origin(request):
            log.warning("console_cross_site_post", identity=who.identity)
            response = self.pages.refusal("a form from another site was refused")
        else:
            request[VISITOR] = who
            try:
                response = await handler(request)
            except web.HTTPForbidden as exc:
                response = self.pages.refusal(exc.text or "forbidden")
            except web.HTTPException as exc:
                response = exc
            except Exception as exc:  # a bug must not show a trace (nor log what was typed)
                log.error("console_error", route=_route(request), error=type(exc).__name__)
                response = self.pages.failure()
            log.debug("console_request", route=_route(request), status=response.status,
                      identity=who.identity)  # fmt: skip
        if not response.prepared:
            response.headers.update(_HEADERS)
        return response

    def _visitor(self, request: web.Request) -> Visitor | Refused:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        policy = self.server.policy if self.server.tls is not None else None
        return visitor_of(der, request.remote or "", policy)

    @property
    def scheme(self) -> str:
        return "https" if self.server.tls is not None else "http"

    async def start(self) -> int:
        """Serve on ``console_listen``; returns the bound port (useful with port 0)."""
        host, port = parse_listen(self.listen, "hub.console_listen")
        tls = self.server.tls
        # No signal handling (the hub's); at stop, the checks under way get the hub's drain
        # grace, and the live status streams end at once.
        grace = self.server.config.drain_grace_ms / 1000.0
        runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=grace
        )
        await runner.setup()
        try:
            ssl_context = tls.server_ssl_context() if tls is not None else None
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                "hub.console_listen", f"cannot bind {self.listen}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        who = "client certificates" if tls else "the local user (development)"
        log.info("console_started", listen=self.listen, port=self.port, scheme=self.scheme,
                 identities=who)  # fmt: skip
        return self.port

    async def stop(self) -> None:
        """Stop listening; let the checks under way finish (within ``hub.drain_grace_ms``)."""
        self.pages.closing.set()  # ends the live status streams
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _same_origin(request: web.Request) -> bool:
    """Whether a POST comes from a page of this console, by the headers browsers send
    (``Sec-Fetch-Site``, ``Origin``: an opaque ``null`` origin is refused too). A client that
    sends neither is no browser, and not the attack this guards against."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def _route(request: web.Request) -> str:
    """The route's pattern (``/checks/{check_id}``), never the path a visitor filled in."""
    info = request.match_info.route.resource
    return info.canonical if info is not None else "?"
