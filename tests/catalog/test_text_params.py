"""Every string a model takes must be text we can store and send on: catalog validation
refuses a lone surrogate itself, naming the param, whoever parsed the body."""

import pytest

from mediagate.catalog.loader import load_catalog
from mediagate.catalog.validation import validate_request
from mediagate.core.errors import InvalidRequest


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("prompt", "a\ud800b", "prompt"),
        ("callback_url", "https://example.com/\udfff", "callback_url"),
        ("images", ["https://example.com/a.png", "https://a.b/\ud83d"], "images"),
    ],
)
def test_finding_7_a_lone_surrogate_in_a_param_is_refused(
    field: str, value: object, param: str
) -> None:
    body = {"model": "kling-image-o1", "prompt": "fox", field: value}
    with pytest.raises(InvalidRequest, match="lone surrogate") as refused:
        validate_request(load_catalog([]), body, "images/generations")
    assert refused.value.param == param


def test_real_unicode_passes() -> None:
    body = {"model": "kling-image-o1", "prompt": "un renard 🦊 — ça va"}
    request = validate_request(load_catalog([]), body, "images/generations")
    assert request.params["prompt"] == "un renard 🦊 — ça va"
