"""/models: grouped by output, filtered by output, provider and capability."""

import re

import httpx2

from mediagate.catalog.loader import Catalog, load_catalog, parse_spec
from mediagate.web.model_list import ModelFilter, filter_choices, model_groups

CLIP = {
    "id": "test-clip",
    "name": "Test Clip",
    "endpoint": "videos/generations",
    "capabilities": ["text-to-video"],
    "types": {"text-to-video": {"price": 10}},
    "params": {"prompt": {"type": "string", "required": True}},
    "routes": [
        {
            "provider": "replicate",
            "tasks": {
                "text-to-video": {
                    "endpoint": "example/clip",
                    "fields": {"prompt": "prompt"},
                    "results": ["output"],
                }
            },
        }
    ],
}


def catalog_with_a_video_model() -> Catalog:
    return Catalog([*load_catalog().models.values(), parse_spec(CLIP)])


def ids(groups: list) -> dict[str, list[str]]:
    return {g.output: [m["id"] for m in g.models] for g in groups}


def test_models_are_grouped_by_output_images_first() -> None:
    catalog = catalog_with_a_video_model()
    everything = ids(model_groups(catalog, ModelFilter()))
    assert list(everything) == ["image", "video"]
    assert everything["video"] == [
        "kling-v2.5-turbo",
        "seedance-1-pro",
        "veo-3.1-fast",
        "test-clip",
    ]
    assert everything["image"][0] == "kling-image-o1"
    choices = filter_choices(catalog)
    assert choices["output"] == ["image", "video"]
    assert "replicate" in choices["provider"] and "text-to-video" in choices["capability"]


def test_each_filter_narrows_and_they_combine() -> None:
    catalog = catalog_with_a_video_model()
    videos = ids(model_groups(catalog, ModelFilter(output="video")))
    assert videos == {"video": ["kling-v2.5-turbo", "seedance-1-pro", "veo-3.1-fast", "test-clip"]}
    by_kling = ids(model_groups(catalog, ModelFilter(provider="kling")))
    assert by_kling == {"image": ["kling-image-o1", "kling-v3-omni"], "video": ["kling-v2.5-turbo"]}
    shots = ids(model_groups(catalog, ModelFilter(capability="ai-multi-shot")))
    assert shots == {"image": ["kling-image-o1"]}
    both = ModelFilter(provider="kling", capability="multi-reference")
    assert ids(model_groups(catalog, both)) == {"image": ["kling-image-o1", "kling-v3-omni"]}
    kling_videos = ids(model_groups(catalog, ModelFilter(output="video", provider="kling")))
    assert kling_videos == {"video": ["kling-v2.5-turbo"]}
    assert model_groups(catalog, ModelFilter(output="video", provider="openai")) == []


async def test_models_page_filters_by_query(client: httpx2.AsyncClient) -> None:
    page = (await client.get("/models")).text
    assert 'data-output="image"' in page
    listed = re.findall(r'data-model="([^"]+)"', page)
    assert listed[0] == "kling-image-o1" and "flux-schnell" in listed
    narrowed = (await client.get("/models", params={"provider": "kling"})).text
    assert re.findall(r'data-model="([^"]+)"', narrowed) == [
        "kling-image-o1",
        "kling-v3-omni",
        "kling-v2.5-turbo",
    ]
    assert "<option selected>kling</option>" in narrowed
    none = (await client.get("/models", params={"output": "video", "provider": "openai"})).text
    assert "No model matches these filters" in none
