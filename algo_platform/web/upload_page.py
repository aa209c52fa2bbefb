"""`/platform/upload`: editors upload an event file into one of their projects' landing zones.

The form is read as it streams in (upload_receiver.py): the CSRF token and the editor role are
checked before any of the file is kept, and the body is capped while it arrives. The page's form
asks for a preview (`step=preview`): the file waits in the uploader's staging area
(ingest/staging.py) while the page shows what it holds and what cleaning would drop, and lands
only when they confirm, byte for byte what was previewed; cancelling removes it. A form without
`step=preview` (scripts, `Accept: application/json`) lands at once, as `algo-platform upload`
does: the same checks, mapping rules and landing zone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from algo_platform.accounts.principal import Principal, Role
from algo_platform.core import environment
from algo_platform.ingest.staging import NotStaged, Staging
from algo_platform.web import pages
from algo_platform.web.csrf import csrf_matches, csrf_ok, csrf_token
from algo_platform.web.upload_preview import preview_page, preview_staged
from algo_platform.web.upload_receiver import UploadRefused, receive_upload

MAX_UPLOAD_BYTES = 2 * 1024**3  # a web upload's whole body; ALGO_PLATFORM_UPLOAD_MAX_MB overrides it


def max_upload_bytes() -> int:
    configured = environment.read("ALGO_PLATFORM_UPLOAD_MAX_MB")
    return int(configured) << 20 if configured else MAX_UPLOAD_BYTES


class UploadPage:
    """The upload page and its form's handler, served by the sign-in middleware (`site`)."""

    def __init__(self, site):
        self.site = site

    def routes(self) -> dict:
        return {
            ("GET", "/platform/upload"): self.page,
            ("POST", "/platform/upload"): self.upload,
            ("POST", "/platform/upload/confirm"): self.confirm,
            ("POST", "/platform/upload/cancel"): self.cancel,
        }

    def _staging(self) -> Staging:
        from algo_platform.core.settings import load_settings

        return Staging(load_settings().staging_dir)

    def _editable(self, principal: Principal) -> list[str]:
        return [p for p in self.site.known_projects() if (principal.role_on(p) or 0) >= Role.editor]

    async def page(self, request: Request, principal: Principal) -> Response:
        return HTMLResponse(pages.upload_form(self._editable(principal), self.site.prefix, csrf_token(request)))

    async def upload(self, request: Request, principal: Principal) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        scope = request.scope

        def answer(message: str, status: int, **extra) -> Response:
            if wants_json:
                return JSONResponse({"message": message, **extra}, status_code=status)
            page = pages.upload_form(
                self._editable(principal), self.site.prefix, csrf_token(request), message, status < 400
            )
            return HTMLResponse(page, status)

        attempted: dict[str, str] = {}

        def authorize(fields: Mapping[str, list[str]]) -> None:
            """Before any of the file is kept: the CSRF token (header or a field before the file), then the role."""
            token = request.headers.get("x-csrf-token") or (fields.get("csrf") or [None])[0]
            if not csrf_matches(request, token):
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
                await run_in_threadpool(self.site.audit.record, "upload", "denied", scope, principal,
                                        project=attempted.get("project") or None, detail=message)  # fmt: skip
                return answer(message, status)
            project, day = received.first("project"), received.first("date").strip()
            if received.path is None:
                await run_in_threadpool(self.site.audit.record, "upload", "denied", scope, principal, project=project,
                                        detail="the form holds no file")  # fmt: skip
                return answer("choose a file to upload", 400)
            mappings = [m.strip() for text in received.fields.get("map", []) for m in text.split(",") if m.strip()]
            if received.first("step") == "preview":
                return await self._preview(request, principal, project, day, mappings, received)
            result = await run_in_threadpool(self._land, project, day, received.path, mappings)
        outcome = "allowed" if result["ok"] else "failed"
        await run_in_threadpool(self.site.audit.record, "upload", outcome, scope, principal, project=project,
                                target=result.get("target") or received.filename, detail=result["message"])  # fmt: skip
        details = {key: value for key, value in result.items() if key != "message"}
        return answer(result["message"], 200 if result["ok"] else 400, **details)

    async def _preview(self, request, principal, project: str, day: str, mappings: list[str], received) -> Response:
        """Stage the received file and show what it holds; nothing reaches the landing zone."""
        wants_json = "application/json" in request.headers.get("accept", "")
        name = received.filename or received.path.name
        staged = await run_in_threadpool(
            self._staging().stage, principal.name, project, day, mappings, received.path, name
        )
        folder = self._staging()._staged_folder(principal.name, staged.token)
        outcome = await run_in_threadpool(preview_staged, self.site.settings.projects_dir, staged, folder)
        await run_in_threadpool(self.site.audit.record, "upload-preview", "allowed" if outcome.ok else "failed",
                                request.scope, principal, project=project, target=name,
                                detail=f"sha256 {staged.sha256}; {outcome.summary}")  # fmt: skip
        if not outcome.ok:
            await run_in_threadpool(self._staging().discard, principal.name, staged.token)
        if wants_json:
            return JSONResponse(outcome.as_json(staged), status_code=200 if outcome.ok else 400)
        page = preview_page(outcome, staged, self.site.prefix, csrf_token(request))
        return HTMLResponse(page, 200 if outcome.ok else 400)

    async def _staged_action(self, request: Request, principal: Principal):
        """The form of a confirm or cancel: its token checked, and the staged file it names (or a refusal)."""
        form = await request.form(max_files=0, max_fields=4)
        if not csrf_ok(request, form):
            return None, "the form expired; upload the file again"
        try:
            staged, folder = self._staging().load(principal.name, str(form.get("token", "")))
        except NotStaged as error:
            return None, str(error)
        if (principal.role_on(staged.project) or 0) < Role.editor:
            return (
                None,
                f"uploading to {staged.project} needs editor; you are {principal.describe_role(staged.project)}",
            )
        return (staged, folder), None

    async def confirm(self, request: Request, principal: Principal) -> Response:
        """Land exactly the previewed bytes (their SHA-256 is checked again), then empty the staging folder."""
        wants_json = "application/json" in request.headers.get("accept", "")
        found, refusal = await self._staged_action(request, principal)
        if refusal:
            await run_in_threadpool(
                self.site.audit.record, "upload", "denied", request.scope, principal, detail=refusal
            )
            return self._answer(request, principal, refusal, 400, wants_json)
        staged, folder = found
        path = staged.path_in(folder)
        result = await run_in_threadpool(self._land, staged.project, staged.day, path, staged.mapping, staged.sha256)
        if result["ok"]:
            await run_in_threadpool(self._staging().discard, principal.name, staged.token)
        await run_in_threadpool(
            self.site.audit.record, "upload", "allowed" if result["ok"] else "failed", request.scope, principal,
            project=staged.project, target=result.get("target") or staged.name,
            detail=f"confirmed preview, sha256 {staged.sha256}; {result['message']}",
        )  # fmt: skip
        details = {key: value for key, value in result.items() if key != "message"}
        return self._answer(request, principal, result["message"], 200 if result["ok"] else 400, wants_json, **details)

    async def cancel(self, request: Request, principal: Principal) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        found, refusal = await self._staged_action(request, principal)
        if refusal:
            await run_in_threadpool(self.site.audit.record, "upload-cancel", "denied", request.scope, principal,
                                    detail=refusal)  # fmt: skip
            return self._answer(request, principal, refusal, 400, wants_json)
        staged, _ = found
        await run_in_threadpool(self._staging().discard, principal.name, staged.token)
        await run_in_threadpool(self.site.audit.record, "upload-cancel", "allowed", request.scope, principal,
                                project=staged.project, target=staged.name,
                                detail=f"sha256 {staged.sha256}")  # fmt: skip
        return self._answer(request, principal, f"cancelled: {staged.name} was not landed", 200, wants_json)

    def _answer(self, request, principal, message: str, status: int, wants_json: bool, **extra) -> Response:
        if wants_json:
            return JSONResponse({"message": message, **extra}, status_code=status)
        page = pages.upload_form(
            self._editable(principal), self.site.prefix, csrf_token(request), message, status < 400
        )
        return HTMLResponse(page, status)

    def _land(
        self, project_name: str, day: str, local: Path, mappings: list[str], expected_sha256: str | None = None
    ) -> dict:
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
            result = upload_for_project(project, load_settings(), local, day, mappings, expected_sha256)
        except (UploadError, ValueError) as error:
            return {"ok": False, "message": str(error)}
        # Where it landed, as the project's own path (landing/events/<day>/<file>): the server's
        # folders are nobody's business but its admins'.
        target = str(result.target).removeprefix(str(load_settings().layout.project(project.name).root)).lstrip("/")
        if result.already_present:
            message = f"{target}: identical file already landed; nothing to do"
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
            "target": target,
            "rows": result.rows,
            "already_present": result.already_present,
        }
