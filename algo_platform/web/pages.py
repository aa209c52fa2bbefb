"""The platform's own pages beside the Dagster UI: sign-in, upload, the audit log, users, data.

Plain HTML with one stylesheet (static/platform.css) and one header; only the data page and the
upload preview run a script (their charts)."""

from __future__ import annotations

import datetime as dt
from html import escape

from algo_platform.accounts.audit_log import AuditEntry
from algo_platform.accounts.principal import Principal

STATIC = "/platform/static"


def page(title: str, body: str, prefix: str = "", header: str = "", scripts: tuple[str, ...] = ()) -> str:
    """A platform page: the stylesheet, the header (`nav`), the title and `body`, then `scripts` (file names)."""
    tags = "".join(f"<script src='{escape(prefix)}{STATIC}/{escape(name)}'></script>" for name in scripts)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)} · algo-platform</title>"
        f"<link rel='stylesheet' href='{escape(prefix)}{STATIC}/platform.css'></head>"
        f"<body>{header or _bare_header(prefix)}<main><h1>{escape(title)}</h1>{body}</main>{tags}</body></html>"
    )


def _bare_header(prefix: str) -> str:
    return f"<header class='bar'><a class='brand' href='{escape(prefix)}/platform'>algo-platform</a></header>"


def sign_in_form(csrf: str, next_path: str, prefix: str, message: str | None = None, user: str = "") -> str:
    notice = f"<p class='error' role='alert'>{escape(message)}</p>" if message else ""
    return page(
        "Sign in",
        f"""{notice}
<form class="stacked" method="post" action="{escape(prefix)}/auth/sign-in">
  <input type="hidden" name="csrf" value="{escape(csrf)}">
  <input type="hidden" name="next" value="{escape(next_path)}">
  <label>User <input name="username" id="username" autocomplete="username" value="{escape(user)}" required></label>
  <label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" id="sign-in" class="primary">Sign in</button>
</form>""",
        prefix,
    )


PAGES = (
    ("/", "Dagster UI"),
    ("/platform/data", "Data"),
    ("/platform/gpus", "GPUs"),
    ("/platform/upload", "Upload"),
    ("/platform/audit", "Audit log"),
    ("/platform/users", "Users"),
)


def nav(prefix: str, csrf: str, current: str = "") -> str:
    """The header of every signed-in page: the platform's pages, the Dagster UI and sign-out."""
    links = "".join(
        f"<a href='{escape(prefix)}{path}'{' aria-current=page' if path == current else ''}>{name}</a>"
        for path, name in PAGES
    )
    return f"""<header class='bar'><a class='brand' href='{escape(prefix)}/platform'>algo-platform</a><nav>{links}</nav>
<form method="post" action="{escape(prefix)}/auth/sign-out">
<input type="hidden" name="csrf" value="{escape(csrf)}"><button type="submit" id="sign-out">Sign out</button>
</form></header>"""


def home(principal: Principal, prefix: str, csrf: str, projects_table: str = "") -> str:
    """Who is signed in, and where each of their projects stands (web/standing.py)."""
    admin = "<p>Platform admin: every project, every action.</p>" if principal.platform_admin else ""
    return page(
        f"Signed in as {principal.name}",
        f"{admin}<h2>Your projects</h2>{projects_table}"
        f"<p><a href='{escape(prefix)}/platform/data'>See your projects' data</a></p>",
        prefix,
        nav(prefix, csrf, "/platform"),
    )


def upload_form(projects: list[str], prefix: str, csrf: str, message: str | None = None, ok: bool = False) -> str:
    """The upload form: a file is first staged and previewed (step=preview); the preview confirms it."""
    notice = f"<p class='{'ok' if ok else 'error'}' role='status' id='result'>{escape(message)}</p>" if message else ""
    options = "".join(f"<option value='{escape(p)}'>{escape(p)}</option>" for p in projects)
    header = nav(prefix, csrf, "/platform/upload")
    if not projects:
        return page("Upload events", f"{notice}<p>You are an editor of no project.</p>", prefix, header)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return page(
        "Upload events",
        f"""{notice}
<p class="muted">You see what the file holds, and what cleaning would drop, before anything lands.</p>
<form class="stacked" method="post" action="{escape(prefix)}/platform/upload" enctype="multipart/form-data">
  <input type="hidden" name="csrf" value="{escape(csrf)}">
  <input type="hidden" name="step" value="preview">
  <label>Project <select name="project" id="project">{options}</select></label>
  <label>Day <input name="date" id="date" placeholder="{today}" required></label>
  <label>Column mapping, if the file's names differ (optional)
    <input name="map" id="map" placeholder="user_id=userId, item_id=movieId, ts=timestamp"></label>
  <!-- The file comes last: the server checks the token and the role before it keeps any of it. -->
  <label>File (Parquet, CSV, JSONL) <input type="file" name="file" id="file" required></label>
  <button type="submit" id="upload" class="primary">Preview</button>
</form>""",
        prefix,
        header,
    )


def audit_table(entries: list[AuditEntry], prefix: str, csrf: str) -> str:
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(value) if value is not None else '')}</td>" for value in entry.as_dict().values())
        + "</tr>"
        for entry in reversed(entries)
    )
    head = "".join(f"<th>{h}</th>" for h in AuditEntry.__dataclass_fields__ if h != "at")
    table = f"<div class='table-scroll'><table id='audit'><tr><th>time</th>{head}</tr>{rows}</table></div>"
    return page("Audit log", table, prefix, nav(prefix, csrf, "/platform/audit"))
