"""The task view's reading of the server's objects, without a server."""

from pathlib import Path

import pytest
from mediagate_client import Client, ResultsExpired, Task


def test_expired_results_are_named_and_never_downloaded(tmp_path: Path) -> None:
    """Past the server's retention an output's url is null: `download` says so instead
    of fetching anything (this client points nowhere; no request is made)."""
    data = {
        "task_id": "task_old",
        "status": "completed",
        "output": {
            "images": [
                {
                    "url": None,
                    "width": 64,
                    "height": 64,
                    "expired": True,
                    "expires_at": "2026-11-01T00:00:00Z",
                }
            ],
            "videos": [],
        },
    }
    task = Task(Client(api_key="aio_test_x", base_url="http://127.0.0.1:9"), data)
    assert task.outputs[0].expired and task.outputs[0].url is None
    with pytest.raises(ResultsExpired, match="1 of its 1 results were deleted"):
        task.download(tmp_path)
    assert list(tmp_path.iterdir()) == []
