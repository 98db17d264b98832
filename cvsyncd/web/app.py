"""The dashboard's routes: pages, actions, output downloads, ``/healthz``, ``/metrics``.

Every action is a POST carrying the session's CSRF token and goes through the very
functions the command line uses (``pipeline/actions.py``: retry, forget, pause/resume);
the daemon is then woken at once (no signal needed: it is this process). Pages are
rendered on the server and work without script; ``/static/app.js`` only refreshes parts
of them from ``/live`` every few seconds. Every answer carries a strict
Content-Security-Policy: no inline script or style, nothing from elsewhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cvsyncd import __version__
from cvsyncd import events as ev
from cvsyncd.cleanvoice.answers import account_balance, balance_unit
from cvsyncd.counters import Counters
from cvsyncd.errors import ApiError, StoreUnavailable
from cvsyncd.pipeline import actions
from cvsyncd.pipeline.runtime import Runtime
from cvsyncd.web import views
from cvsyncd.web.auth import COOKIE, Session, Sessions, Throttle, host_ok, safe_next
from cvsyncd.web.downloads import OutputMissing, open_output, stream
from cvsyncd.web.metrics import DaemonCollector, make_registry

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
CREDIT_SECONDS = 600.0  # the credit balance is asked for at most this often
MAX_FORM_BYTES = 16 * 1024


@dataclass
class Hooks:
    """What the dashboard needs of the daemon around it."""

    health: Callable[[], tuple[bool, str]]  # the daemon's health rule (daemon/health.py)
    wake: Callable[[], None]  # the store changed: act now
    unavailable: Callable[[str], str | None]  # why a folder's inbox cannot be used


class SecurityHeaders:
    """Add HEADERS to every answer (pages, errors, static files, health, metrics)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.raw = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.raw]
            await send(message)

        await self.app(scope, receive, with_headers)


class Credit:
    """The account's credit balance, asked for now and then (never on a page's path)."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.value: float | None = None
        self.unit = ""
        self.asked = -CREDIT_SECONDS
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        if time.monotonic() - self.asked < CREDIT_SECONDS or self._task is not None:
            return
        self.asked = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._ask())

    async def _ask(self) -> None:
        try:
            account = await self.runtime.client.account()
            self.value = account_balance(account)
            self.unit = balance_unit(account)
        except ApiError:
            pass  # shown as unknown; the account pause deals with a refused key
        finally:
            self._task = None

    def text(self) -> str | None:
        return None if self.value is None else f"{self.value:,.1f} {self.unit}".strip()


class Dashboard:
    """One running dashboard: its sessions, its templates, its routes."""

    def __init__(
        self,
        runtime: Runtime,
        counters: Counters,
        hooks: Hooks,
        *,
        password: str | None,
        loopback: bool,
    ):
        self.runtime = runtime
        self.hooks = hooks
        self.loopback = loopback
        self.sessions = Sessions(password)
        self.throttle = Throttle()
        self.credit = Credit(runtime)
        self.log = structlog.get_logger("cvsyncd.web")
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("cvsyncd.web", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.static = {
            name: (resources.files("cvsyncd.web").joinpath("static", name).read_bytes(), kind)
            for name, kind in STATIC.items()
        }
        self.registry = make_registry(
            DaemonCollector(
                runtime,
                counters,
                hooks.unavailable,
                lambda: self.credit.value,
                lambda: hooks.health()[0],
            )
        )

    def app(self) -> ASGIApp:
        page = self._page
        routes = [
            Route("/", page(self.overview)),
            Route("/jobs", page(self.jobs)),
            Route("/jobs/{job_id:int}", page(self.job)),
            Route("/jobs/{job_id:int}/outputs/{n:int}", page(self.download)),
            Route("/usage", page(self.usage)),
            Route("/live", page(self.live)),
            Route("/actions/{action}", page(self.action), methods=["POST"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", page(self.logout), methods=["POST"]),
            Route("/static/{name}", self.static_file),
            Route("/favicon.ico", lambda request: Response(status_code=204)),
            Route("/healthz", self.healthz),
            Route("/metrics", self.metrics),
        ]
        handlers = {StoreUnavailable: _store_unavailable}
        return SecurityHeaders(Starlette(routes=routes, exception_handlers=handlers))

    # -- the guard around every page and action ---------------------------------------

    def _page(
        self, handler: Callable[[Request, Session], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            if not host_ok(request.headers.get("host"), self.loopback):
                return PlainTextResponse("unknown host name for this dashboard", 421)
            session = self.sessions.get(request.cookies.get(COOKIE))
            if session is None and not self.sessions.needs_login and request.method == "GET":
                session = self.sessions.new(logged_in=True)  # loopback, no password
                response = await handler(request, session)
                self._set_cookie(response, session)
                return response
            if session is None or not session.logged_in:
                if request.method != "GET":
                    return PlainTextResponse("log in first", 403)
                return RedirectResponse("/login", 303)
            if request.method == "POST":
                form = await self._form(request)
                if form is None or not session.csrf_ok(str(form.get("csrf") or "")):
                    self.log.warning(ev.WEB_REFUSED, path=request.url.path, why="csrf")
                    return PlainTextResponse("refused: the form's token is missing or stale", 403)
                request.state.form = form
            return await handler(request, session)

        return guarded

    async def _form(self, request: Request) -> FormData | None:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            return None
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/x-www-form-urlencoded":
            return None
        return await request.form(max_files=0, max_fields=20)

    def _set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE, session.token, httponly=True, samesite="strict", path="/", secure=False
        )

    def _render(self, name: str, session: Session, **context: Any) -> HTMLResponse:
        flash, session.flash = session.flash, []
        html = self.templates.get_template(name).render(
            csrf=session.csrf,
            flash=flash,
            login=self.sessions.needs_login,
            version=__version__,
            **context,
        )
        return HTMLResponse(html)

    # -- pages ------------------------------------------------------------------------

    async def overview(self, request: Request, session: Session) -> Response:
        self.credit.refresh()
        data = self._overview_data()
        return self._render("overview.html", session, page="overview", **data)

    def _overview_data(self) -> dict[str, Any]:
        r = self.runtime
        return views.overview(r.config, r.store, self.hooks.unavailable, self.credit.text())

    async def jobs(self, request: Request, session: Session) -> Response:
        q = request.query_params
        before = q.get("before", "")
        data = views.jobs_page(
            self.runtime.config,
            self.runtime.store,
            q.getlist("state"),
            q.get("folder") or None,
            int(before) if before.isdigit() else None,
        )
        return self._render("jobs.html", session, page="jobs", **data)

    async def job(self, request: Request, session: Session) -> Response:
        job_id = int(request.path_params["job_id"])
        data = views.job_page(self.runtime.config, self.runtime.store, job_id)
        if data is None:
            return self._render("missing.html", session, page="jobs", what=f"job {job_id}")
        return self._render("job.html", session, page="jobs", **data)

    async def usage(self, request: Request, session: Session) -> Response:
        data = views.usage(self.runtime.config, self.runtime.store)
        return self._render("usage.html", session, page="usage", **data)

    async def live(self, request: Request, session: Session) -> Response:
        """Fresh parts of a page, as HTML (rendered by the same macros as the page), for
        app.js to put in place."""
        parts: Any = self.templates.get_template("parts.html").make_module()
        csrf = session.csrf
        if request.query_params.get("view") == "job":
            job_id = request.query_params.get("id", "")
            data = views.job_page(
                self.runtime.config, self.runtime.store, int(job_id) if job_id.isdigit() else 0
            )
            if data is None:
                return JSONResponse({"parts": {}})
            state = str(parts.job_state(data["job"]["state"], data["progress"]))
            return JSONResponse({"parts": {"job-state": state}})
        data = self._overview_data()
        return JSONResponse(
            {
                "parts": {
                    "folders": str(parts.folders(data["folders"], data["all_paused"], csrf)),
                    "counts": str(parts.counts(data["counts"], data["total"])),
                    "active": str(parts.active(data["active"], data["queued"])),
                    "need-you": str(parts.need_you(data["need_you"], data["need_you_total"], csrf)),
                    "held": str(
                        parts.held(data["held"], data["held_total"], data["held_why"], csrf)
                    ),
                    "recent": str(parts.recent(data["recent"])),
                }
            }
        )

    async def download(self, request: Request, session: Session) -> Response:
        job = self.runtime.store.get(int(request.path_params["job_id"]))
        folder = self.runtime.folder_of(job) if job else None
        if job is None or folder is None:
            return PlainTextResponse("no such job", 404)
        try:
            fd, name, size = open_output(job, folder, int(request.path_params["n"]))
        except OutputMissing as exc:
            return PlainTextResponse(str(exc), 404)
        return stream(fd, name, size)

    # -- actions ----------------------------------------------------------------------

    async def action(self, request: Request, session: Session) -> Response:
        form: FormData = request.state.form
        action = request.path_params["action"]
        config, store = self.runtime.config, self.runtime.store
        back = safe_next(str(form.get("next") or ""))
        if action in ("retry", "forget"):
            ids = [int(str(v)) for v in form.getlist("job") if str(v).isdigit()]
            do = actions.retry_jobs if action == "retry" else actions.forget_jobs
            outcomes = do(config, store, ids)
            session.flash += [o.message for o in outcomes] or ["no job was named"]
            if action == "forget" and back.startswith("/jobs/"):
                back = "/jobs"  # the job's page is gone
        elif action == "release":
            ids = [int(str(v)) for v in form.getlist("job") if str(v).isdigit()]
            every = form.get("all") == "1"
            outcomes = actions.release_jobs(config, store, ids, every=every)
            session.flash += [o.message for o in outcomes] or ["no held job was named"]
        elif action in ("pause", "resume"):
            folder = str(form.get("folder") or "") or None
            outcome = actions.hold(
                config, store, folder, "paused from the dashboard", resume=action == "resume"
            )
            session.flash.append(outcome.message)
        else:
            return PlainTextResponse("no such action", 404)
        self.log.info(
            ev.WEB_ACTION, action=action, ids=form.getlist("job"), folder=form.get("folder")
        )
        self.hooks.wake()
        return RedirectResponse(back, 303)

    # -- logging in and out -----------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if not host_ok(request.headers.get("host"), self.loopback):
            return PlainTextResponse("unknown host name for this dashboard", 421)
        if not self.sessions.needs_login:
            return RedirectResponse("/", 303)
        session = self.sessions.get(request.cookies.get(COOKIE))
        if request.method == "GET" or session is None:
            if session is None:
                session = self.sessions.new(logged_in=False)
            response = self._render("login.html", session, page="login", wait=0)
            self._set_cookie(response, session)
            return response
        client = request.client.host if request.client else "?"
        form = await self._form(request)
        if form is None or not session.csrf_ok(str(form.get("csrf") or "")):
            self.log.warning(ev.WEB_REFUSED, path="/login", why="csrf")
            return PlainTextResponse("refused: the form's token is missing or stale", 403)
        wait = self.throttle.wait_left(client)
        if wait > 0:
            session.flash.append(f"too many failed logins: try again in {wait:.0f} s")
            return self._render("login.html", session, page="login", wait=wait)
        if not self.sessions.password_ok(str(form.get("password") or "")):
            failures = self.throttle.failed(client)
            self.log.warning(ev.WEB_LOGIN_FAILED, client=client, failures=failures)
            session.flash.append("wrong password")
            refused = self._render("login.html", session, page="login", wait=0)
            refused.status_code = 403
            return refused
        self.throttle.succeeded(client)
        self.sessions.drop(session)
        fresh = self.sessions.new(logged_in=True)  # a new token: no session fixation
        self.log.info(ev.WEB_LOGIN, client=client)
        welcome = RedirectResponse("/", 303)
        self._set_cookie(welcome, fresh)
        return welcome

    async def logout(self, request: Request, session: Session) -> Response:
        self.sessions.drop(session)
        response = RedirectResponse("/login" if self.sessions.needs_login else "/", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    # -- no login: static files, health, metrics --------------------------------------

    async def static_file(self, request: Request) -> Response:
        found = self.static.get(request.path_params["name"])
        if found is None:
            return PlainTextResponse("not found", 404)
        body, kind = found
        return Response(body, media_type=kind)

    async def healthz(self, request: Request) -> Response:
        ok, text = self.hooks.health()
        return PlainTextResponse(text + "\n", 200 if ok else 503)

    async def metrics(self, request: Request) -> Response:
        # a scraper alone (nobody opens the overview) keeps the credit balance known too
        self.credit.refresh()
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """The shared store is away (pipeline/outage.py): say so, and that it is temporary."""
    return PlainTextResponse(
        f"{exc}\n\nThis page comes back by itself when the database answers again.\n",
        status_code=503,
        headers={"Retry-After": "10"},
    )
