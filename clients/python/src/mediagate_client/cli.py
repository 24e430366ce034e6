"""`mediagate-client`: generate, upload and manage tasks from the command line.

Results go to stdout (a task id, a task as JSON, or saved file paths); progress and
errors to stderr. Exit codes: 0 done (task completed), 1 the task failed or was
cancelled, 2 a usage error (bad arguments, no key, a missing file, a parameter the
server refused), 3 any other error (authentication, credits, server, network), 4 still
in progress when --timeout ran out."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from mediagate_client.client import Client, Task
from mediagate_client.errors import InvalidRequestError, MediagateError, WaitTimeout

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3, 4
PROGRESS_EVERY_S = 10.0
"""How often `--wait` reports that a task is still running."""


class UsageError(Exception):
    """Arguments that make no request possible (exit 2)."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(list(sys.argv[1:] if argv is None else argv)))


def run(argv: list[str]) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if extra and args.command != "generate":
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        args.params = _extra_params(extra)
        key = args.api_key or os.environ.get("MEDIAGATE_API_KEY")
        if not key:
            raise UsageError("no API key: pass --api-key or set MEDIAGATE_API_KEY")
        with Client(key, base_url=args.base_url, timeout=args.http_timeout) as client:
            return int(args.func(client, args))
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        return _fail(EXIT_USAGE, str(exc))
    except InvalidRequestError as exc:
        return _fail(EXIT_USAGE, str(exc))
    except WaitTimeout as exc:
        print(exc.task.id)
        return _fail(EXIT_TIMEOUT, exc.message)
    except MediagateError as exc:
        return _fail(EXIT_ERROR, str(exc))


def _fail(code: int, message: str) -> int:
    print(f"mediagate-client: error: {message}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mediagate-client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--api-key", help="API key (default: $MEDIAGATE_API_KEY)")
    parser.add_argument(
        "--base-url",
        default=os.environ.get("MEDIAGATE_BASE_URL"),
        help="server (default: $MEDIAGATE_BASE_URL, else http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--http-timeout", type=float, default=30.0, help="seconds per HTTP request (default 30)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "generate",
        help="create a task (any other --name VALUE is a model parameter)",
        description="Create a task. Local --image files are uploaded first. Any other "
        "--name VALUE is sent as the model parameter `name` (dashes become underscores; "
        "numbers, true/false and JSON lists are typed): --aspect-ratio 16:9 --num-images 2.",
    )
    p.add_argument("--model", required=True)
    p.add_argument("--prompt")
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="PATH_OR_URL",
        help="a reference image: a local file (uploaded) or an http(s) URL; repeatable",
    )
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="a model parameter"
    )
    p.add_argument("--wait", action="store_true", help="wait for the task to end")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--out", type=Path, metavar="DIR", help="save the results here (implies --wait)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("upload", help="upload a reference image; prints its URL")
    p.add_argument("path", type=Path)
    p.set_defaults(func=cmd_upload)

    tasks = sub.add_parser("tasks", help="list, show and cancel tasks").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = tasks.add_parser("list", help="the account's tasks, newest first")
    p.add_argument("--status", help="IN_PROGRESS, completed, failed or cancelled")
    p.add_argument("--model")
    p.add_argument("--created-after", metavar="TIME", help="RFC 3339, e.g. 2026-11-23T10:00:00Z")
    p.add_argument("--created-before", metavar="TIME")
    p.add_argument("--limit", type=int, default=20, help="how many tasks at most (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON task object a line")
    p.set_defaults(func=cmd_tasks_list)
    p = tasks.add_parser("get", help="one task as JSON")
    p.add_argument("task_id")
    p.add_argument("--wait", action="store_true", help="wait for the task to end")
    p.add_argument("--timeout", type=float)
    p.set_defaults(func=cmd_tasks_get)
    p = tasks.add_parser("cancel", help="cancel a task (nothing is charged)")
    p.add_argument("task_id")
    p.set_defaults(func=cmd_tasks_cancel)
    return parser


def _extra_params(extra: list[str]) -> dict[str, Any]:
    """`--aspect-ratio 16:9 --num-images=2` -> {"aspect_ratio": "16:9", "num_images": 2}."""
    params: dict[str, Any] = {}
    tokens = iter(extra)
    for token in tokens:
        if not token.startswith("--") or token == "--":
            raise UsageError(f"unexpected argument {token!r} (model parameters are --name VALUE)")
        name, equals, value = token[2:].partition("=")
        if not equals:
            value = next(tokens, None)  # type: ignore[assignment]
            if value is None or value.startswith("--"):
                raise UsageError(f"--{name} needs a value")
        params[name.replace("-", "_")] = _typed(value)
    return params


def _typed(value: str) -> Any:
    """A number, boolean, null or JSON list/object as such; anything else as text."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(parsed, str) else parsed


def cmd_generate(client: Client, args: argparse.Namespace) -> int:
    params: dict[str, Any] = dict(args.params)
    for item in args.param:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise UsageError(f"--param {item!r} is not NAME=VALUE")
        params[name] = _typed(value)
    if args.prompt is not None:
        params["prompt"] = args.prompt
    if args.image:
        params["images"] = [_reference(client, image) for image in args.image]
    task = client.generate(args.model, **params)
    _progress(f"task {task.id} submitted ({args.model})")
    if not (args.wait or args.out):
        print(task.id)
        return EXIT_OK
    _wait(task, args.timeout)
    if args.out and task.completed:
        for path in task.download(args.out):
            _progress(f"saved {path}")
            print(path)
    else:
        print(json.dumps(task.data, indent=2))
    return _outcome(task)


def _reference(client: Client, image: str) -> str:
    if image.startswith(("http://", "https://")):
        return image
    path = Path(image)
    if not path.is_file():
        raise UsageError(f"--image {image}: no such file (or give an http(s) URL)")
    _progress(f"uploading {path} ({path.stat().st_size} bytes)")
    upload = client.upload(path)
    _progress(f"uploaded {path.name}: {upload.width}x{upload.height} {upload.format}")
    return upload.url


def _wait(task: Task, timeout: float | None) -> None:
    """`task.wait`, reporting on stderr every PROGRESS_EVERY_S while it runs."""
    started = time.monotonic()
    while True:
        left = None if timeout is None else timeout - (time.monotonic() - started)
        step = PROGRESS_EVERY_S if left is None else max(0.0, min(PROGRESS_EVERY_S, left))
        try:
            task.wait(step)
            break
        except WaitTimeout:
            if left is not None and left <= PROGRESS_EVERY_S:
                raise WaitTimeout(
                    f"task {task.id} still in progress after {timeout} s", task
                ) from None
            _progress(f"task {task.id} in progress ({time.monotonic() - started:.0f} s)")
    took = time.monotonic() - started
    detail = f", {task.credits} credits" if task.completed else _error_text(task)
    _progress(f"task {task.id} {task.status} after {took:.1f} s{detail}")


def _error_text(task: Task) -> str:
    return f": {task.error.get('message')}" if task.error else ""


def _outcome(task: Task) -> int:
    return EXIT_OK if task.completed else EXIT_FAILED


def cmd_upload(client: Client, args: argparse.Namespace) -> int:
    if not args.path.is_file():
        raise UsageError(f"{args.path}: no such file")
    print(client.upload(args.path).url)
    return EXIT_OK


def cmd_tasks_list(client: Client, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    tasks = client.list_tasks(
        status=args.status,
        model=args.model,
        created_after=args.created_after,
        created_before=args.created_before,
        page_size=min(args.limit, 100),
    )
    if not args.json:
        print(f"{'TASK':<28} {'STATUS':<12} {'MODEL':<24} {'CREATED':<21} CREDITS")
    for n, task in enumerate(tasks, 1):
        if args.json:
            print(json.dumps(task.data))
        else:
            created, model = task.data.get("created_at") or "-", task.model or "-"
            print(f"{task.id:<28} {task.status:<12} {model:<24} {created:<21} {task.credits}")
        if n >= args.limit:
            break
    return EXIT_OK


def cmd_tasks_get(client: Client, args: argparse.Namespace) -> int:
    task = client.get_task(args.task_id)
    if args.wait:
        _wait(task, args.timeout)
    print(json.dumps(task.data, indent=2))
    return _outcome(task) if task.done else EXIT_OK


def cmd_tasks_cancel(client: Client, args: argparse.Namespace) -> int:
    task = client.cancel_task(args.task_id)
    _progress(f"task {task.id} {task.status}")
    print(json.dumps(task.data, indent=2))
    return EXIT_OK


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
