"""The platform's own pages beside the Dagster UI: sign-in, upload, the audit log. Plain HTML, no scripts."""

from __future__ import annotations

import datetime as dt
from html import escape

from algo_platform.accounts.store import AuditEntry, Principal

STYLE = """
body { font-family: system-ui, sans-serif; margin: 3rem auto; max-width: 60rem; color: #1c2024; }
form { display: grid; gap: .6rem; max-width: 24rem; }
input, select, button { font: inherit; padding: .4rem; }
.error { color: #b00020; } .ok { color: #1b5e20; }
table { border-collapse: collapse; font-size: .85rem; } td, th { border-bottom: 1px solid #ddd; padding: .3rem .5rem; }
nav a { margin-right: 1rem; }
"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)} · algo-platform</title>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def sign_in_form(csrf: str, next_path: str, prefix: str, message: str | None = None, user: str = "") -> str:
    notice = f"<p class='error' role='alert'>{escape(message)}</p>" if message else ""
    return page(
        "Sign in",
        f"""{notice}
<form method="post" action="{escape(prefix)}/auth/sign-in">
  <input type="hidden" name="csrf" value="{escape(csrf)}">
  <input type="hidden" name="next" value="{escape(next_path)}">
  <label>User <input name="username" id="username" autocomplete="username" value="{escape(user)}" required></label>
  <label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" id="sign-in">Sign in</button>
</form>""",
    )


def nav(prefix: str, csrf: str) -> str:
    return f"""<nav><a href="{escape(prefix)}/">Dagster UI</a><a href="{escape(prefix)}/platform/upload">Upload</a>
<a href="{escape(prefix)}/platform/audit">Audit log</a><a href="{escape(prefix)}/platform/users">Users</a>
<form method="post" action="{escape(prefix)}/auth/sign-out" style="display:inline">
<input type="hidden" name="csrf" value="{escape(csrf)}"><button type="submit" id="sign-out">Sign out</button>
</form></nav>"""


def home(principal: Principal, prefix: str, csrf: str) -> str:
    roles = "".join(f"<li>{escape(p)}: {escape(r.name)}</li>" for p, r in sorted(principal.roles.items()))
    admin = "<p>Platform admin: every project, every action.</p>" if principal.platform_admin else ""
    return page(
        f"Signed in as {principal.name}",
        f"{nav(prefix, csrf)}{admin}<h2>Your roles</h2><ul>{roles or '<li>none yet</li>'}</ul>",
    )


def upload_form(projects: list[str], prefix: str, csrf: str, message: str | None = None, ok: bool = False) -> str:
    notice = f"<p class='{'ok' if ok else 'error'}' role='status' id='result'>{escape(message)}</p>" if message else ""
    options = "".join(f"<option value='{escape(p)}'>{escape(p)}</option>" for p in projects)
    if not projects:
        return page("Upload events", f"{nav(prefix, csrf)}{notice}<p>You are an editor of no project.</p>")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    return page(
        "Upload events",
        f"""{nav(prefix, csrf)}{notice}
<form method="post" action="{escape(prefix)}/platform/upload" enctype="multipart/form-data">
  <input type="hidden" name="csrf" value="{escape(csrf)}">
  <label>Project <select name="project" id="project">{options}</select></label>
  <label>Day <input name="date" id="date" placeholder="{today}" required></label>
  <label>Column mapping, if the file's names differ (optional)
    <input name="map" id="map" placeholder="user_id=userId, item_id=movieId, ts=timestamp"></label>
  <!-- The file comes last: the server checks the token and the role before it keeps any of it. -->
  <label>File (Parquet, CSV, JSONL) <input type="file" name="file" id="file" required></label>
  <button type="submit" id="upload">Upload</button>
</form>""",
    )


def audit_table(entries: list[AuditEntry], prefix: str, csrf: str) -> str:
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{escape(str(value) if value is not None else '')}</td>" for value in entry.as_dict().values())
        + "</tr>"
        for entry in reversed(entries)
    )
    head = "".join(f"<th>{h}</th>" for h in AuditEntry.__dataclass_fields__ if h != "at")
    return page("Audit log", f"{nav(prefix, csrf)}<table id='audit'><tr><th>time</th>{head}</tr>{rows}</table>")
