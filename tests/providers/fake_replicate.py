"""A fake of Replicate's predictions API, served for real on loopback.

It answers with the bodies Replicate documents (tests/providers/fixtures/replicate.json,
each entry naming its source) and refuses what Replicate refuses: a wrong token (401),
an unknown model (404), input its model's schema does not take (422). It is stricter than
Replicate about unknown input keys, so a mapping mistake in a route shows up here.

Behaviour per prediction is chosen by markers in the prompt:
  [fake:ratelimit]  one 429 with Retry-After: FakeState.retry_after_s, then fine
  [fake:5xx]        create always 500             [fake:malformed]  creates, answers garbage
  [fake:policy]     fails: the safety checker caught every image (cog-flux's message)
  [fake:canceled]   ends canceled (by someone at Replicate)
  [fake:slow]       processing until canceled      [fake:404]        result URLs that 404
  [fake:string]     output is one URL string, not a list
  [fake:422]        create refused with the recorded 422 problem body
Without a marker a prediction is `processing` on its first poll and `succeeded` after.
"""

from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.providers.fakes import FakeState, common_routes, documented, documented_headers

INPUTS: dict[str, dict[str, Any]] = {
    # github.com/replicate/cog-flux predict.py (Inputs; the model behind
    # black-forest-labs/flux-schnell): output is a list of image URLs.
    "black-forest-labs/flux-schnell": {
        "required": {"prompt"},
        "allowed": {
            "prompt",
            "aspect_ratio",
            "num_outputs",
            "seed",
            "output_format",
            "output_quality",
            "disable_safety_checker",
            "go_fast",
            "megapixels",
            "num_inference_steps",
        },
        "enums": {
            "aspect_ratio": (
                "1:1",
                "16:9",
                "21:9",
                "3:2",
                "2:3",
                "4:5",
                "5:4",
                "3:4",
                "4:3",
                "9:16",
                "9:21",
            ),
            "output_format": ("webp", "jpg", "png"),
            "megapixels": ("1", "0.25"),
        },
        "ranges": {"num_outputs": (1, 4), "num_inference_steps": (1, 4)},
    },
}
BODY_KEYS = {"input", "webhook", "webhook_events_filter", "stream"}
WEBHOOK_EVENTS = {"start", "output", "logs", "completed"}


@dataclass
class ReplicateState(FakeState):
    retry_after_s: int = 7
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of every create request, in order."""


def replicate_app(state: ReplicateState) -> Starlette:
    def problem(name: str, status: int, **values: Any) -> JSONResponse:
        headers = {k: v.format(**values) for k, v in documented_headers("replicate", name).items()}
        return JSONResponse(documented("replicate", name, **values), status, headers=headers)

    def invalid(detail: str) -> JSONResponse:
        body = documented("replicate", "invalid_422")
        body.update(title="Input validation failed", detail=detail)
        return JSONResponse(body, 422, media_type="application/problem+json")

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.key}"

    def prediction(task_id: str, name: str) -> dict[str, Any]:
        task = state.tasks[task_id]
        body = documented("replicate", name, id=task_id, model=task["model"], base=state.base)
        body["input"] = task["input"]
        return dict(body)

    def refused_input(model: str, values: Any) -> JSONResponse | None:
        schema = INPUTS[model]
        if not isinstance(values, dict):
            return invalid("- input: Invalid type. Expected: object")
        for name in sorted(schema["required"] - set(values)):
            return invalid(f"- input: {name} is required")
        for name in sorted(set(values) - schema["allowed"]):
            return invalid(f"- input: Additional property {name} is not allowed")
        for name, choices in schema["enums"].items():
            if name in values and values[name] not in choices:
                return invalid(f"- input.{name}: must be one of {list(choices)}")
        for name, (low, high) in schema["ranges"].items():
            if name in values and not low <= values[name] <= high:
                return invalid(f"- input.{name}: must be between {low} and {high}")
        return None

    async def create(request: Request) -> Response:
        state.calls["submit"] += 1
        if not authorized(request):
            return problem("unauthenticated_401", 401)
        model = f"{request.path_params['owner']}/{request.path_params['name']}"
        if model not in INPUTS:
            body = documented("replicate", "not_found_404")
            body["detail"] = f"Model {model} not found"
            return JSONResponse(body, 404, media_type="application/problem+json")
        body = await request.json()
        values = body.get("input") if isinstance(body, dict) else None
        prompt = str(values.get("prompt", "")) if isinstance(values, dict) else ""
        if "[fake:5xx]" in prompt:
            return PlainTextResponse("upstream connect error", 500)
        if "[fake:ratelimit]" in prompt and prompt not in state.rate_limited:
            state.rate_limited.add(prompt)
            return problem("throttled_429", 429, retry_after=state.retry_after_s)
        if "[fake:422]" in prompt:
            return problem("invalid_422", 422)
        if not isinstance(body, dict) or set(body) - BODY_KEYS:
            return invalid(f"- (root): unexpected fields {sorted(body)}")
        if set(body.get("webhook_events_filter", [])) - WEBHOOK_EVENTS:
            return invalid("- webhook_events_filter: unknown event")
        if (refused := refused_input(model, values)) is not None:
            return refused
        state.bodies.append({"model": model, **body})
        state.headers.append(dict(request.headers))
        task_id = state.create(prompt, values.get("num_outputs", 1), callback=body.get("webhook"))
        state.tasks[task_id].update(model=model, input=values, polls=0, status="starting")
        if "[fake:malformed]" in prompt:
            return PlainTextResponse('{"id": "', 201)
        return JSONResponse(prediction(task_id, "prediction_starting"), 201)

    async def get(request: Request) -> Response:
        state.calls["poll"] += 1
        if not authorized(request):
            return problem("unauthenticated_401", 401)
        task_id = request.path_params["prediction_id"]
        if task_id not in state.tasks:
            body = documented("replicate", "not_found_404")
            body["detail"] = "Prediction not found"
            return JSONResponse(body, 404, media_type="application/problem+json")
        task = state.tasks[task_id]
        task["polls"] += 1
        prompt = task["prompt"]
        if task["status"] == "canceled" or "[fake:canceled]" in prompt:
            return JSONResponse(prediction(task_id, "prediction_canceled"))
        if "[fake:slow]" in prompt or task["polls"] == 1:
            return JSONResponse(prediction(task_id, "prediction_processing"))
        if "[fake:policy]" in prompt:
            return JSONResponse(prediction(task_id, "prediction_failed_nsfw"))
        answer = prediction(task_id, "prediction_succeeded")
        urls = state.outputs(task_id)
        answer["output"] = urls[0] if "[fake:string]" in prompt else urls
        answer["metrics"]["image_count"] = len(urls)
        return JSONResponse(answer)

    async def cancel(request: Request) -> Response:
        if not authorized(request):
            return problem("unauthenticated_401", 401)
        task_id = request.path_params["prediction_id"]
        state.calls["cancel"] += 1
        state.cancelled.append(task_id)
        state.tasks[task_id]["status"] = "canceled"
        return JSONResponse(prediction(task_id, "prediction_canceled"))

    async def account(request: Request) -> Response:
        if not authorized(request):
            return problem("unauthenticated_401", 401)
        return JSONResponse(documented("replicate", "account"))

    return Starlette(
        routes=[
            *common_routes(),
            Route("/v1/account", account),
            Route("/v1/models/{owner}/{name}/predictions", create, methods=["POST"]),
            Route("/v1/predictions/{prediction_id}", get),
            Route("/v1/predictions/{prediction_id}/cancel", cancel, methods=["POST"]),
        ]
    )
