"""The status page at `/admin` (issue 6): for an administrator, at a glance, over the last hour — queue depth,
throughput and error ratio as small charts, apdex per feature, the models that answered, the live workers,
the recent failed actions behind the error ratio with their reason (`core.metrics.recent_failures`) and the
guarded migrations running or ended in the last day, with the controller's last check. It reloads itself
every `REFRESH_S` seconds (a `<meta http-equiv=refresh>`;
`/admin?refresh=0` turns it off, with a link on the page), and has a Sign out button (`POST /admin/sign-out`
clears the session cookie).

It reads the per-minute counters that workers flush to Redis (`core.metrics.MinuteStats`, `keys.stats`), so
it needs no Prometheus. The page is server-rendered HTML with inline SVG: no script, no external asset.
Authentication: an admin's token in `Authorization`/`PRIVATE-TOKEN`, or entered once in the page's form.
The form starts a session: an HttpOnly, SameSite=Strict cookie scoped to `/admin` (Secure over TLS) that
holds the token's digest sealed with a key derived from `SWITCHBOARD_SECRET_KEY` (never the token), expires
after 8 hours, and is checked again on every request: revoking the token or the admin bit ends it.
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from access.admin import rollouts
from access.admin.rollouts import RolloutView
from access.tokens import Principal, hash_token
from api.auth import principal_for, principal_for_digest, token_from_headers
from api.rest.health import live_workers
from api.services import Services
from core import keys
from core.metrics import Failure, recent_failures, sample_queue
from core.secrets import SecretBox, session_box

__all__ = ["admin_routes", "HourStats", "read_hour", "running_migrations", "REFRESH_S"]

COOKIE = "switchboard_admin_session"
SESSION_S = 8 * 3600
MINUTES = 60
REFRESH_S = 10
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1f1f1f;background:#fafafa}
h1{font-size:20px;margin:0 0 4px} .sub{color:#666;margin-bottom:20px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:16px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px}
.card h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:#555;margin:0 0 8px}
.big{font-size:26px;font-weight:600} table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:3px 6px;border-bottom:1px solid #eee} td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#217a3c} .warn{color:#a66200} .bad{color:#b3261e} svg{display:block}
.wide{grid-column:1/-1} .bar{display:flex;gap:12px;align-items:center;margin-bottom:20px;color:#666}
.bar form{margin:0 0 0 auto} td.code{font-family:ui-monospace,monospace;font-size:12px;white-space:nowrap}
"""


@dataclass
class HourStats:
    """The last hour, minute by minute (oldest first), summed over every worker."""

    minutes: list[int]
    done: list[int]
    failed: list[int]
    depth: list[int | None]
    apdex: dict[str, tuple[int, int]] = field(default_factory=dict)  # feature -> (satisfied, measured)
    models: dict[str, int] = field(default_factory=dict)  # provider/model -> answered calls

    @property
    def error_ratio(self) -> list[float | None]:
        return [failed / done if done else None for done, failed in zip(self.done, self.failed, strict=True)]


async def read_hour(redis: object, now: float | None = None) -> HourStats:
    current = int((now if now is not None else time.time()) // 60)
    minutes = list(range(current - MINUTES + 1, current + 1))
    async with redis.pipeline(transaction=False) as pipe:  # type: ignore[attr-defined]
        for minute in minutes:
            pipe.hgetall(keys.stats(minute))
        rows = await pipe.execute()
    stats = HourStats(minutes, [], [], [])
    for row in rows:
        counts = {name.decode(): int(value) for name, value in row.items()}
        stats.done.append(counts.get("done", 0))
        stats.failed.append(counts.get("failed", 0))
        stats.depth.append(counts.get("depth"))
        for name, value in counts.items():
            kind, _, key = name.partition(":")
            if kind in ("apdex", "apdex_ok"):
                ok, measured = stats.apdex.get(key, (0, 0))
                stats.apdex[key] = (ok + value, measured) if kind == "apdex_ok" else (ok, measured + value)
            elif kind == "model":
                stats.models[key] = stats.models.get(key, 0) + value
    return stats


def _chart(values: list[float | None], *, bars: bool = False, percent: bool = False, colour: str = "#1f75cb") -> str:
    """A 300×70 SVG chart of one value a minute; gaps where a minute has no value."""
    width, height, pad = 300, 70, 2
    known = [v for v in values if v is not None]
    top = max(max(known, default=0), 0.05) if percent else (max(known, default=0) or 1)
    step = (width - 2 * pad) / max(len(values), 1)

    def y(value: float) -> float:
        return height - pad - (height - 2 * pad) * value / top

    shapes = []
    if bars:
        for index, value in enumerate(values):
            if value:
                shapes.append(f'<rect x="{pad + index * step:.1f}" y="{y(value):.1f}" width="{max(step - 1, 1):.1f}" '
                              f'height="{height - pad - y(value):.1f}" fill="{colour}"/>')
    else:
        xy = [(pad + (index + 0.5) * step, y(value)) for index, value in enumerate(values) if value is not None]
        if len(xy) > 1:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
            shapes.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        shapes.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2" fill="{colour}"/>' for px, py in xy)
    label = f"{top:.0%}" if percent else f"{top:g}"
    return (f'<svg width="{width}" height="{height + 14}" role="img"><rect width="{width}" height="{height}" fill="#f4f6fa"/>'
            f'{"".join(shapes)}<text x="2" y="{height + 12}" font-size="10" fill="#777">−60 min</text>'
            f'<text x="{width - 2}" y="{height + 12}" font-size="10" fill="#777" text-anchor="end">now · max {label}</text></svg>')


def _apdex_class(score: float) -> str:
    return "ok" if score >= 0.94 else "warn" if score >= 0.85 else "bad"


def _failure_rows(failures: list[Failure]) -> str:
    def cell(value: object, css: str = "") -> str:
        attribute = f' class="{css}"' if css else ""
        return f'<td{attribute}>{html.escape(str(value)) if value is not None else "—"}</td>'

    return "".join(
        "<tr>" + cell(time.strftime("%m-%d %H:%M:%S", time.gmtime(failure.at)), "code") + cell(failure.request_id, "code")
        + cell(failure.feature) + cell(failure.model)
        + cell(f"{failure.error_class} ({failure.status})" if failure.status else failure.error_class, "code")
        + cell(failure.tries, "n") + cell(failure.error) + "</tr>"
        for failure in failures
    ) or '<tr><td colspan="7">no failed request</td></tr>'


def _span(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m" if seconds < 7200 else f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _figure(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _check_cell(check: dict[str, Any] | None) -> str:
    """The controller's last check: its decision, then one line per metric (new vs old, the interval of the
    difference, the verdict)."""
    if not check:
        return "<td>not checked yet</td>"
    decision = str(check.get("decision", "?"))
    css = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}.get(decision, "")
    lines = [f'<strong class="{css}">{html.escape(decision)}</strong>']
    for metric in check.get("metrics") or []:
        if not isinstance(metric, dict):
            continue
        interval = (f" [{_figure(metric.get('low'))}, {_figure(metric.get('high'))}]"
                    if metric.get("low") is not None or metric.get("high") is not None else "")
        text = (f"{metric.get('name')}: {_figure(metric.get('new'))} vs {_figure(metric.get('old'))}, "
                f"Δ {_figure(metric.get('difference'))}{interval} {metric.get('verdict') or ''}")
        lines.append(html.escape(text.strip()))
    cohorts = check.get("cohorts")
    if isinstance(cohorts, dict) and cohorts:
        sizes = ", ".join(f"{name} {value.get('requests', '?') if isinstance(value, dict) else value}"
                          for name, value in cohorts.items())
        lines.append(html.escape(f"requests: {sizes}"))
    return f'<td>{"<br>".join(lines)}</td>'


def _migration_rows(migrations: list[RolloutView]) -> str:
    rows = []
    for view in migrations:
        state = view.state.replace("_", " ") + (" (forced)" if view.forced else "")
        css = {"rolled_back": "bad", "aborted": "warn", "paused": "warn", "promoted": "ok", "completed": "ok"}.get(view.state, "")
        reach = f"{view.percentage:g}%" + (f" + {', '.join(view.actors)}" if view.actors else "")
        rows.append(
            "<tr>"
            f"<td>{html.escape(f'{view.kind} {view.subject}')}</td>"
            f'<td class="code">{html.escape(view.from_ref)} → {html.escape(view.to_ref)}</td>'
            f'<td class="{css}">{html.escape(state)}</td>'
            f"<td>{html.escape(view.step)} · {html.escape(reach)}</td>"
            f'<td class="n">{"—" if view.ended else _span(view.time_in_step_s)}</td>'
            f"{_check_cell(view.last_check)}"
            f"<td>{html.escape(view.reason or '')}</td>"
            "</tr>"
        )
    return "".join(rows) or '<tr><td colspan="7">no migration running or ended in the last day</td></tr>'


def render(stats: HourStats, *, depth_now: int, oldest_age_s: float, workers: dict[str, dict[str, object]],
           failures: list[Failure] | None = None, migrations: list[RolloutView] | None = None,
           refresh: bool = True, signed_in: bool = False) -> str:
    done, failed = sum(stats.done), sum(stats.failed)
    ratio = failed / done if done else 0.0
    apdex_rows = "".join(
        f'<tr><td>{html.escape(feature)}</td><td class="n {_apdex_class(ok / measured)}">{ok / measured:.3f}</td>'
        f'<td class="n">{measured}</td></tr>'
        for feature, (ok, measured) in sorted(stats.apdex.items()) if measured
    ) or '<tr><td colspan="3">no answers in the last hour</td></tr>'
    model_rows = "".join(
        f'<tr><td>{html.escape(model)}</td><td class="n">{count}</td></tr>'
        for model, count in sorted(stats.models.items(), key=lambda item: -item[1])
    ) or '<tr><td colspan="2">no model calls in the last hour</td></tr>'
    worker_rows = "".join(
        f'<tr><td>{html.escape(worker_id)}</td><td class="n">{beat.get("jobs", 0)}</td></tr>'
        for worker_id, beat in sorted(workers.items())
    ) or '<tr><td colspan="2" class="bad">no live worker</td></tr>'
    reload = (f'<span id="refresh">Refreshes every {REFRESH_S} s · <a href="/admin?refresh=0">pause</a></span>' if refresh
              else '<span id="refresh">Auto-refresh paused · <a href="/admin">resume</a></span>')
    sign_out = ('<form method="post" action="/admin/sign-out"><button type="submit" id="sign-out">Sign out</button></form>'
                if signed_in else "")
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}<title>Switchboard status</title><style>{_STYLE}</style></head>
<body><h1>Switchboard status</h1>
<div class="bar">Last hour, per minute · rendered {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} · {reload}{sign_out}</div>
<div class="grid">
<div class="card" id="queue"><h2>Queue depth</h2><div class="big">{depth_now}</div>
<div class="sub">oldest job {oldest_age_s:.1f} s</div>{_chart([float(v) if v is not None else None for v in stats.depth])}</div>
<div class="card" id="throughput"><h2>Throughput (actions / min)</h2><div class="big">{done}</div>
<div class="sub">AI actions ended in the last hour</div>{_chart([float(v) for v in stats.done], bars=True)}</div>
<div class="card" id="errors"><h2>Error ratio</h2><div class="big {'bad' if ratio > 0.05 else 'ok'}">{ratio:.1%}</div>
<div class="sub">{failed} of {done} ended in an error</div>{_chart(stats.error_ratio, percent=True, colour="#b3261e")}</div>
<div class="card" id="apdex"><h2>Apdex per feature (30 s)</h2><table><tr><th>feature</th><th>apdex</th><th>answers</th></tr>{apdex_rows}</table></div>
<div class="card" id="models"><h2>Models in use</h2><table><tr><th>provider/model</th><th>calls</th></tr>{model_rows}</table></div>
<div class="card" id="workers"><h2>Workers ({len(workers)} live)</h2><table><tr><th>worker</th><th>jobs now</th></tr>{worker_rows}</table></div>
<div class="card wide" id="migrations"><h2>Guarded migrations</h2><table><caption class="sub">Model and prompt migrations running, and those ended in the last day</caption><tr><th scope="col">migration</th><th scope="col">from → to</th><th scope="col">state</th><th scope="col">step · actors</th><th scope="col">in step</th><th scope="col">last check</th><th scope="col">reason</th></tr>{_migration_rows(migrations or [])}</table></div>
<div class="card wide" id="failures"><h2>Recent failed requests (last {keys.FAILURES_MAXLEN})</h2><table><tr><th>time (UTC)</th><th>request id</th><th>feature</th><th>model</th><th>error class</th><th>tries</th><th>error shown to the user</th></tr>{_failure_rows(failures or [])}</table></div>
</div></body></html>"""


_LOGIN = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Switchboard status</title><style>{_STYLE}</style></head>
<body><h1>Switchboard status</h1><div class="card" style="max-width:420px"><h2>Administrator token</h2>
<form method="post" action="/admin"><p><input type="password" name="token" size="40" autocomplete="off"></p>
<p><button type="submit">Sign in</button></p></form>{{message}}</div></body></html>"""


def _is_admin(principal: Principal | None) -> bool:
    return principal is not None and principal.admin


async def _sessions(request: Request) -> SecretBox:
    """The box sealing this app's session cookies, built on first use (it may read the data directory)."""
    box: SecretBox | None = getattr(request.app.state, "admin_sessions", None)
    if box is None:
        box = await asyncio.to_thread(session_box, request.app.state.services.settings)
        request.app.state.admin_sessions = box
    return box


async def _session_principal(request: Request) -> Principal | None:
    """The principal of the session cookie's token, read again now (through the authentication cache)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    digest = (await _sessions(request)).open(cookie, max_age_s=SESSION_S)
    return await principal_for_digest(request.app.state.services, digest) if digest else None


def _login(status: int, message: str = "") -> HTMLResponse:
    note = f'<p class="bad">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(_LOGIN.replace("{message}", note), status_code=status)


async def running_migrations(services: Services) -> list[RolloutView]:
    """The model and prompt migrations (SPEC §9.1) not ended, and those ended in the last day."""
    async with services.sessions() as session:
        return await rollouts.status(session)


async def _page(request: Request) -> Response:
    token = token_from_headers(request.headers)
    if token is not None:
        if not _is_admin(await principal_for(request.app.state.services, token)):
            return _login(403, "That token is not an administrator's.")
    elif not _is_admin(await _session_principal(request)):
        response = _login(401)
        if COOKIE in request.cookies:  # expired, forged, or its token or admin bit revoked since
            response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict")
        return response
    services = request.app.state.services
    stats = await read_hour(services.redis)
    depth, age = await sample_queue(services.redis)
    workers = await live_workers(services.redis)
    page = render(stats, depth_now=depth, oldest_age_s=age, workers=workers, failures=await recent_failures(services.redis),
                  migrations=await running_migrations(services), refresh=request.query_params.get("refresh") != "0",
                  signed_in=token is None)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


async def _sign_in(request: Request) -> Response:
    form = parse_qs((await request.body()).decode(errors="replace"))
    token = (form.get("token") or [""])[0].strip()
    if not token or not _is_admin(await principal_for(request.app.state.services, token)):
        return _login(403, "That token is not an administrator's.")
    response = RedirectResponse("/admin", status_code=303)
    session = (await _sessions(request)).encrypt(hash_token(token))
    response.set_cookie(COOKIE, session, path="/admin", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", max_age=SESSION_S)
    return response


async def _sign_out(request: Request) -> Response:
    """Clear the session cookie; back to the sign-in form."""
    response = RedirectResponse("/admin", status_code=303)
    response.delete_cookie(COOKIE, path="/admin", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return response


def admin_routes() -> list[Route]:
    return [Route("/admin", _page, methods=["GET"]), Route("/admin", _sign_in, methods=["POST"]),
            Route("/admin/sign-out", _sign_out, methods=["POST"])]
