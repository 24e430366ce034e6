"""The asynchronous client: `AsyncClient` and its `AsyncTask` handles (asyncio or trio,
through httpx2). Same methods as `Client`, awaited."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import anyio
import httpx2

from mediagate_client import _wire
from mediagate_client._wire import API, Call, RetryPolicy, WaitClock
from mediagate_client.errors import APIConnectionError, APIError, WaitTimeout
from mediagate_client.types import TaskView, Upload

log = logging.getLogger("mediagate_client")


class AsyncClient:
    """A mediagate server's API, async. `async with AsyncClient(...) as client:`."""

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
        self._http = httpx2.AsyncClient(base_url=self.base_url, timeout=timeout)
        self._models: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def model(self, model_id: str) -> dict[str, Any]:
        """A model's declaration (params, prices, endpoint), read once per client."""
        if model_id not in self._models:
            self._models[model_id] = await self._data(Call("GET", f"{API}/models/{model_id}"))
        return self._models[model_id]

    async def models(self) -> list[dict[str, Any]]:
        return list(await self._data(Call("GET", f"{API}/models")))

    async def generate(
        self, model: str, *, idempotency_key: str | None = None, **params: Any
    ) -> AsyncTask:
        """Submit a task to the model's endpoint; one Idempotency-Key for every retry."""
        endpoint = _wire.endpoint_of(await self.model(model))
        data = await self._data(_wire.submit_call(endpoint, model, params, idempotency_key))
        return AsyncTask(self, {"model": model, **data})

    async def get_task(self, task_id: str) -> AsyncTask:
        return AsyncTask(self, await self._data(Call("GET", f"{API}/tasks/{task_id}")))

    async def cancel_task(self, task_id: str) -> AsyncTask:
        return AsyncTask(self, await self._data(Call("POST", f"{API}/tasks/{task_id}/cancel")))

    async def list_tasks(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[AsyncTask]:
        """The account's tasks, newest first: `async for task in client.list_tasks()`."""
        params = _wire.list_params(
            status=status,
            model=model,
            created_after=created_after,
            created_before=created_before,
            page_size=page_size,
        )
        cursor: str | None = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            page = await self._data(Call("GET", f"{API}/tasks", params=query))
            for item in page["tasks"]:
                yield AsyncTask(self, item)
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def upload(self, path: str | Path) -> Upload:
        file = Path(path)
        content = await anyio.Path(file).read_bytes()
        call = Call("POST", f"{API}/uploads", files={"file": (file.name, content)})
        return Upload.from_data(await self._data(call))

    async def account(self) -> dict[str, Any]:
        return dict(await self._data(Call("GET", f"{API}/account")))

    async def download(self, url: str, dest: Path) -> Path:
        """Stream one file to `dest` (via `dest.part`); no API key is sent."""
        part = anyio.Path(dest.with_name(dest.name + ".part"))
        async with self._http.stream("GET", url, follow_redirects=True) as response:
            if response.status_code >= 400:
                await response.aread()
                raise _wire.error_from(response)
            async with await part.open("wb") as out:
                async for chunk in response.aiter_bytes():
                    await out.write(chunk)
        await part.replace(dest)
        return dest

    async def _data(self, call: Call) -> Any:
        return _wire.data_of(await self._send(call))

    async def _send(self, call: Call) -> httpx2.Response:
        headers = {"Authorization": f"Bearer {self.api_key}", **call.headers}
        timeout = httpx2.Timeout(self.timeout, read=call.read_timeout or self.timeout)
        attempt = 0
        while True:
            status: int | None = None
            error: APIError | None = None
            try:
                response = await self._http.request(
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
            await anyio.sleep(delay)
            attempt += 1


class AsyncTask(TaskView):
    """A task of an `AsyncClient`: `await task.wait()`, `refresh()`, `cancel()`,
    `download(dir)`."""

    def __init__(self, client: AsyncClient, data: dict[str, Any]) -> None:
        super().__init__(data)
        self._client = client

    async def refresh(self) -> AsyncTask:
        self.data = (await self._client.get_task(self.id)).data
        return self

    async def wait(self, timeout: float | None = None) -> AsyncTask:
        """Until the task ends (`Prefer: wait`, else polling with backoff); WaitTimeout
        after `timeout` s."""
        clock = WaitClock(timeout)
        while not self.done:
            if clock.expired():
                raise WaitTimeout(f"task {self.id} still in progress after {timeout} s", self)
            response = await self._client._send(_wire.wait_call(self.id, clock.wait_s()))
            self.data = _wire.data_of(response)
            if not self.done and not _wire.waited(response):
                await anyio.sleep(clock.next_poll())
        return self

    async def cancel(self) -> AsyncTask:
        self.data = (await self._client.cancel_task(self.id)).data
        return self

    async def download(self, directory: str | Path) -> list[Path]:
        folder = Path(directory)
        await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        return [
            await self._client.download(
                str(o.url),
                folder / _wire.file_name(self.id, n, str(o.url), o.data.get("content_type")),
            )
            for n, o in enumerate(self.downloadable(), 1)
        ]
