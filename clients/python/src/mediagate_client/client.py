"""The synchronous client: `Client` and its `Task` handles."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx2

from mediagate_client import _wire
from mediagate_client._wire import API, Call, RetryPolicy, WaitClock
from mediagate_client.errors import APIConnectionError, APIError, WaitTimeout
from mediagate_client.types import TaskView, Upload

log = logging.getLogger("mediagate_client")


class Client:
    """A mediagate server's API. The key and base URL default to MEDIAGATE_API_KEY and
    MEDIAGATE_BASE_URL. Use it as a context manager, or `close()` it."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.api_key, self.base_url = _wire.settings(api_key, base_url)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._http = httpx2.Client(base_url=self.base_url, timeout=timeout)
        self._models: dict[str, dict[str, Any]] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the API ----------------------------------------------------------------------

    def model(self, model_id: str) -> dict[str, Any]:
        """A model's declaration (params, prices, endpoint), read once per client."""
        if model_id not in self._models:
            self._models[model_id] = self._data(Call("GET", f"{API}/models/{model_id}"))
        return self._models[model_id]

    def models(self) -> list[dict[str, Any]]:
        return list(self._data(Call("GET", f"{API}/models")))

    def generate(self, model: str, *, idempotency_key: str | None = None, **params: Any) -> Task:
        """Submit a task to the model's endpoint (images or videos); its handle at once.
        One Idempotency-Key covers every retry of this call: never a second task."""
        endpoint = _wire.endpoint_of(self.model(model))
        data = self._data(_wire.submit_call(endpoint, model, params, idempotency_key))
        return Task(self, {"model": model, **data})

    def get_task(self, task_id: str) -> Task:
        return Task(self, self._data(Call("GET", f"{API}/tasks/{task_id}")))

    def cancel_task(self, task_id: str) -> Task:
        """End a task `cancelled` (nothing charged); ConflictError when it cannot be."""
        return Task(self, self._data(Call("POST", f"{API}/tasks/{task_id}/cancel")))

    def list_tasks(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
    ) -> Iterator[Task]:
        """The account's tasks, newest first, page after page as the iteration needs them."""
        params = _wire.list_params(
            status=status,
            model=model,
            created_after=created_after,
            created_before=created_before,
            page_size=page_size,
        )
        cursor: str | None = None
        while True:
            page = self._data(
                Call(
                    "GET",
                    f"{API}/tasks",
                    params={**params, **({"cursor": cursor} if cursor else {})},
                )
            )
            for item in page["tasks"]:
                yield Task(self, item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def upload(self, path: str | Path) -> Upload:
        """Upload a local reference image; its `url` goes in a model's `images`."""
        file = Path(path)
        call = Call("POST", f"{API}/uploads", files={"file": (file.name, file.read_bytes())})
        return Upload.from_data(self._data(call))

    def account(self) -> dict[str, Any]:
        """The key's account: balance, key, webhook secret."""
        return dict(self._data(Call("GET", f"{API}/account")))

    def download(self, url: str, dest: Path) -> Path:
        """Stream one file to `dest` (via `dest.part`, renamed when whole). No API key is
        sent: file URLs may be on another origin (a storage bucket)."""
        part = dest.with_name(dest.name + ".part")
        with self._http.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                response.read()
                raise _wire.error_from(response)
            with part.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        part.replace(dest)
        return dest

    # -- transport --------------------------------------------------------------------

    def _data(self, call: Call) -> Any:
        return _wire.data_of(self._send(call))

    def _send(self, call: Call) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **call.headers}
        timeout = httpx2.Timeout(self.timeout, read=call.read_timeout or self.timeout)
        attempt = 0
        while True:
            status: int | None = None
            error: APIError | None = None
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    headers=headers,
                    timeout=timeout,
                )
                if response.status_code < 400:
                    return response
                status, error = response.status_code, _wire.error_from(response)
                failure: Exception = error
            except httpx2.TransportError as exc:
                failure = APIConnectionError(f"{call.method} {call.path}: {exc!r}")
            delay = self.retry.delay(attempt, status, error, call.replayable)
            if delay is None:
                raise failure
            log.info(
                "retrying %s %s in %.2f s after %s",
                call.method,
                call.path,
                delay,
                status or failure,
            )
            time.sleep(delay)
            attempt += 1


class Task(TaskView):
    """A task of a `Client`: `wait()`, `refresh()`, `cancel()`, `download(dir)`."""

    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._client = client

    def refresh(self) -> Task:
        """Read the task again (in place); returns itself."""
        self.data = self._client.get_task(self.id).data
        return self

    def wait(self, timeout: float | None = None) -> Task:
        """Until the task ends (completed, failed or cancelled: check `status`). Each
        request asks the server to hold its answer (`Prefer: wait`); a server that does
        not is polled with backoff. WaitTimeout after `timeout` s (None: no limit)."""
        clock = WaitClock(timeout)
        while not self.done:
            if clock.expired():
                raise WaitTimeout(f"task {self.id} still in progress after {timeout} s", self)
            response = self._client._send(_wire.wait_call(self.id, clock.wait_s()))
            self.data = _wire.data_of(response)
            if not self.done and not _wire.waited(response):
                time.sleep(clock.next_poll())
        return self

    def cancel(self) -> Task:
        self.data = self._client.cancel_task(self.id).data
        return self

    def download(self, directory: str | Path) -> list[Path]:
        """Save every output file in `directory` (made if missing); their paths."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        return [
            self._client.download(
                str(o.url),
                folder / _wire.file_name(self.id, n, str(o.url), o.data.get("content_type")),
            )
            for n, o in enumerate(self.downloadable(), 1)
        ]
