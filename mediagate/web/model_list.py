"""The /models page: the catalog grouped by what it outputs, filtered by output,
provider and capability (plain GET parameters, so the page works without script)."""

from dataclasses import dataclass
from typing import Any

from mediagate.catalog.loader import Catalog
from mediagate.catalog.schemas import model_as_data
from mediagate.catalog.spec import ModelSpec

GROUP_TITLES = {"image": "Image models", "video": "Video models"}


def output_of(model: ModelSpec) -> str:
    return model.output


def providers_of(model: ModelSpec) -> list[str]:
    """The live providers a model is routed to, in preference order (the sandbox serves
    every model for test keys, so it is not a distinguishing filter)."""
    return list(dict.fromkeys(r.provider for r in model.routes))


@dataclass(frozen=True)
class ModelFilter:
    output: str = ""
    provider: str = ""
    capability: str = ""

    @classmethod
    def from_query(cls, query: Any) -> "ModelFilter":
        return cls(
            output=query.get("output", ""),
            provider=query.get("provider", ""),
            capability=query.get("capability", ""),
        )

    def keeps(self, model: ModelSpec) -> bool:
        return (
            (not self.output or output_of(model) == self.output)
            and (not self.provider or self.provider in providers_of(model))
            and (not self.capability or self.capability in model.capabilities)
        )


@dataclass(frozen=True)
class Group:
    output: str
    title: str
    models: list[dict[str, Any]]


def model_groups(catalog: Catalog, f: ModelFilter) -> list[Group]:
    """Non-empty groups, images first, each model as /api/v1/models shows it plus the
    providers the page lists."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for model in catalog.models.values():
        if f.keeps(model):
            data = {**model_as_data(model), "providers": providers_of(model)}
            groups.setdefault(output_of(model), []).append(data)
    order = [*GROUP_TITLES, *sorted(set(groups) - set(GROUP_TITLES))]
    return [Group(o, GROUP_TITLES.get(o, o), groups[o]) for o in order if o in groups]


def filter_choices(catalog: Catalog) -> dict[str, list[str]]:
    """Every value each filter can take, from the catalog itself."""
    models = list(catalog.models.values())
    return {
        "output": sorted({output_of(m) for m in models}, key=list(GROUP_TITLES).index),
        "provider": sorted({p for m in models for p in providers_of(m)}),
        "capability": sorted({c for m in models for c in m.capabilities}),
    }
