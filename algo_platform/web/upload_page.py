"""`/platform/upload`: editors upload an event file into one of their projects' landing zones.

The form is read as it streams in (upload_receiver.py): the CSRF token and the editor role are
checked before any of the file is kept, and the body is capped while it arrives. The received
file then goes through the CLI's upload: the same checks, mapping rules and landing zone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from algo_platform.accounts.store import Principal, Role
from algo_platform.web import pages
from algo_platform.web.upload_receiver import UploadRefused, receive_upload

MAX_UPLOAD_BYTES = 2 * 1024**3  # a web upload's whole body; ALGO_PLATFORM_UPLOAD_MAX_MB overrides it


def max_upload_bytes() -> int:
    configured = os.environ.get("ALGO_PLATFORM_UPLOAD_MAX_MB")
    return int(configured) << 20 if configured else MAX_UPLOAD_BYTES


class UploadPage:
    """The upload page and its form's handler, served by the sign-in middleware (`site`)."""

    def __init__(self, site):
        self.site = site

    def routes(self) -> dict:
        return {("GET", "/platform/upload"): self.page, ("POST", "/platform/upload"): self.upload}

    def _editable(self, principal: Principal) -> list[str]:
        return [p for p in self.site.known_projects() if (principal.role_on(p) or 0) >= Role.editor]

    async def page(self, request: Request, principal: Principal) -> Response:
        return HTMLResponse(pages.upload_form(self._editable(principal), self.site.prefix, self.site._csrf(request)))

    async def upload(self, request: Request, principal: Principal) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        scope = request.scope

        def answer(message: str, status: int, **extra) -> Response:
            if wants_json:
                return JSONResponse({"message": message, **extra}, status_code=status)
            page = pages.upload_form(
                self._editable(principal), self.site.prefix, self.site._csrf(request), message, status < 400
            )
            return HTMLResponse(page, status)

        attempted: dict[str, str] = {}

        def authorize(fields: Mapping[str, list[str]]) -> None:
            """Before any of the file is kept: the CSRF token (header or a field before the file), then the role."""
            token = request.headers.get("x-csrf-token") or (fields.get("csrf") or [None])[0]
            if not self.site._csrf_matches(request, token):
                raise UploadRefused(400, "the form expired; reload the page and upload again")
            project = attempted["project"] = (fields.get("project") or [""])[0]
            if (principal.role_on(project) or 0) < Role.editor:
                role = principal.describe_role(project)
                raise UploadRefused(403, f"uploading to {project or '(no project)'} needs editor; you are {role}")

        with tempfile.TemporaryDirectory(prefix="algo-platform-upload-") as folder:
            try:
                received = await receive_upload(request, Path(folder), authorize, max_upload_bytes())
            except (UploadRefused, MultipartParseError, ClientDisconnect) as error:
                status, message = (
                    (error.status, error.message) if isinstance(error, UploadRefused)
                    else (400, "the upload ended early or is not a valid multipart form; upload again")
                )  # fmt: skip
                await run_in_threadpool(self.site._record, "upload", "denied", scope, principal,
                                        project=attempted.get("project") or None, detail=message)  # fmt: skip
                return answer(message, status)
            project, day = received.first("project"), received.first("date").strip()
            if received.path is None:
                return answer("choose a file to upload", 400)
            mappings = [m.strip() for text in received.fields.get("map", []) for m in text.split(",") if m.strip()]
            result = await run_in_threadpool(self._land, project, day, received.path, mappings)
        outcome = "allowed" if result["ok"] else "failed"
        await run_in_threadpool(self.site._record, "upload", outcome, scope, principal, project=project,
                                target=result.get("target") or received.filename, detail=result["message"])  # fmt: skip
        details = {key: value for key, value in result.items() if key != "message"}
        return answer(result["message"], 200 if result["ok"] else 400, **details)

    def _land(self, project_name: str, day: str, local: Path, mappings: list[str]) -> dict:
        """The CLI's upload on the received file: same checks, same mapping rules, same landing zone."""
        from algo_platform.core.project import ProjectError, load_project
        from algo_platform.core.settings import load_settings
        from algo_platform.ingest.for_project import upload_for_project
        from algo_platform.ingest.upload import UploadError

        try:
            project = load_project(self.site.settings.projects_dir / project_name)
        except ProjectError as error:
            return {"ok": False, "message": str(error)}
        try:
            result = upload_for_project(project, load_settings(), local, day, mappings)
        except (UploadError, ValueError) as error:
            return {"ok": False, "message": str(error)}
        if result.already_present:
            message = f"{result.target}: identical file already landed; nothing to do"
        else:
            message = f"landed {result.rows:,} rows in {project.name} for {day}"
        notes = [n for n in (result.note,) if n]
        if result.ignored_columns:
            notes.append(f"column(s) {', '.join(result.ignored_columns)} are not loaded (not canonical or declared)")
        if result.rows_outside_day:
            notes.append(f"{result.rows_outside_day:,} rows have timestamps on other days")
        return {
            "ok": True,
            "message": "; ".join([message, *notes]),
            "target": str(result.target),
            "rows": result.rows,
            "already_present": result.already_present,
        }
