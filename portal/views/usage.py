"""The usage page (chart, table by date and model, recent requests) and its CSV export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from starlette.responses import Response

from portal import chart, formatting, reports
from portal.views.account import key_names
from portal.web import Ctx, PageError, page

DEFAULT_DAYS = 30
MAX_DAYS = 400  # usage days are kept 400 days
RECENT = 25  # requests listed


@dataclass(frozen=True, slots=True)
class Query:
    start: dt.date
    end: dt.date
    model: str


def query(ctx: Ctx) -> Query:
    q = ctx.request.query_params
    try:
        end = dt.date.fromisoformat(q["to"]) if q.get("to") else dt.datetime.now(dt.UTC).date()
        start = dt.date.fromisoformat(q["from"]) if q.get("from") else end - dt.timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise PageError(400, "Dates are written YYYY-MM-DD.") from None
    if start > end:
        raise PageError(400, "The range starts after it ends.")
    if (end - start).days >= MAX_DAYS:
        raise PageError(400, f"Choose at most {MAX_DAYS} days.")
    model = q.get("model", "")
    if len(model) > 256:
        raise PageError(400, "No such model.")
    return Query(start, end, model)


def charts(rows: list[reports.UsageRow], start: dt.date, end: dt.date) -> tuple[str, str, dict[str, str]]:
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    models = sorted({r.model for r in rows})
    cost = {m: [0] * len(days) for m in models}
    toks = {m: [0] * len(days) for m in models}
    for r in rows:
        cost[r.model][index[r.date]] += r.cost_nano
        toks[r.model][index[r.date]] += r.input + r.cached + r.output
    palette = chart.colours(models)
    return (chart.stacked_bars("chart-cost", "Cost per day", days, [chart.Series(m, cost[m]) for m in models],
                               formatting.usd, palette),
            chart.stacked_bars("chart-tokens", "Tokens per day", days,
                               [chart.Series(m, toks[m]) for m in models], chart.compact, palette),
            palette)


@page("user")
async def usage(ctx: Ctx) -> Response:
    q = query(ctx)
    rows = await reports.usage_rows(ctx.portal.billing, ctx.account, q.start, q.end, q.model)
    cost_svg, tokens_svg, palette = charts(rows, q.start, q.end)
    recent = await reports.recent_requests(ctx.portal.redis, ctx.account, limit=RECENT, model=q.model)
    names = await key_names(ctx)
    models = sorted({m.name for m in ctx.portal.gateway.models} | {r.model for r in rows})
    return await ctx.render("usage.html", title="Usage", nav="usage", q=q, rows=rows, total=reports.total(rows),
                            cost_svg=cost_svg, tokens_svg=tokens_svg, palette=palette, recent=recent,
                            key_names=names, models=models)


@page("user")
async def usage_csv(ctx: Ctx) -> Response:
    q = query(ctx)
    rows = await reports.usage_rows(ctx.portal.billing, ctx.account, q.start, q.end, q.model)
    name = f"tokengate-usage-{q.start.isoformat()}-{q.end.isoformat()}.csv"
    return ctx.finish(Response(reports.usage_csv(rows), media_type="text/csv; charset=utf-8",
                               headers={"content-disposition": f'attachment; filename="{name}"'}))
