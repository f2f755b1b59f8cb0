"""The team dashboard page for supervisors and admins.

- `GET /dashboard` serves the page; its css, js and the charting library (ECharts, copied into
  `api/static/vendor/` by `make install` from the npm registry's package) come from `/dashboard/static/<file>`.

The page itself is public like `/sidebar`: it holds no data. Everything it shows comes from the back-office
routes, which a signed-in supervisor (their team) or admin (everyone) may read; anyone else is sent to sign in
or told the page is not for them.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.routes.sidebar import STATIC_DIR
from copilot.errors import NotFoundError

__all__ = ["ECHARTS", "router"]

ECHARTS = STATIC_DIR / "vendor" / "echarts.min.js"
_JS, _CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
_ASSETS = {"theme.css": (STATIC_DIR / "theme.css", _CSS), "dashboard.css": (STATIC_DIR / "dashboard.css", _CSS), "dashboard.js": (STATIC_DIR / "dashboard.js", _JS),
           "vendor/echarts.min.js": (ECHARTS, _JS)}
# Only its own files; ECharts draws on canvas and sets element styles from script, which CSP allows.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff"}

router = APIRouter(tags=["dashboard"])


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "dashboard.html", media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/dashboard/static/{name:path}", include_in_schema=False)
async def dashboard_asset(name: str) -> FileResponse:
    found = _ASSETS.get(name)
    if found is None:
        raise NotFoundError(f"dashboard asset {name!r} not found")
    path, media_type = found
    if not path.is_file():
        raise NotFoundError(f"{name} is missing: run `make install`, which copies it from the npm package")
    return FileResponse(path, media_type=media_type, headers=_HEADERS)
