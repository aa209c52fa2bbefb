"""`algo-platform upload --server URL`: sign in to the platform's webserver and upload through it."""

from __future__ import annotations

from pathlib import Path

import requests


class PlatformClientError(Exception):
    """The server refused, or could not be reached; the message says which and why."""


class PlatformClient:
    def __init__(self, server: str, session: requests.Session, csrf: str):
        self.server, self.session, self.csrf = server.rstrip("/"), session, csrf

    @classmethod
    def sign_in(cls, server: str, user: str, password: str) -> PlatformClient:
        server = server.rstrip("/")
        session = requests.Session()
        try:
            # The sign-in form's token comes with the page's session cookie (CSRF protection).
            page = session.get(f"{server}/auth/sign-in", timeout=30)
            token = page.text.split('name="csrf" value="', 1)[-1].split('"', 1)[0] if page.ok else ""
            answer = session.post(
                f"{server}/auth/sign-in",
                data={"username": user, "password": password, "csrf": token},
                headers={"Accept": "application/json"},
                timeout=60,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise PlatformClientError(f"{server}: {error}") from None
        if answer.status_code != 200:
            raise PlatformClientError(f"sign-in as {user} at {server} refused: {_message(answer)}")
        return cls(server, session, answer.json()["csrf"])

    def upload(self, path: Path, project: str, day: str, mappings: tuple[str, ...] = ()) -> str:
        if not path.is_file():
            raise PlatformClientError(f"{path}: no such file")
        with path.open("rb") as file:
            try:
                answer = self.session.post(
                    f"{self.server}/platform/upload",
                    data={"project": project, "date": day, "map": list(mappings)},
                    files={"file": (path.name, file)},
                    headers={"Accept": "application/json", "X-CSRF-Token": self.csrf},
                    timeout=3600,
                )
            except requests.RequestException as error:
                raise PlatformClientError(f"{self.server}: {error}") from None
        if answer.status_code != 200:
            raise PlatformClientError(f"upload of {path.name} to {project} refused: {_message(answer)}")
        return answer.json()["message"]


def _message(answer: requests.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(body, dict):
        errors = body.get("errors") or [{}]
        return str(body.get("message") or body.get("error") or errors[0].get("message") or answer.status_code)
    return f"HTTP {answer.status_code}"
