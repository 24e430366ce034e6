"""The model tables in the docs are the catalog's: regenerate them with
`python -m mediagate.catalog.model_table --write` after changing a model file."""

from pathlib import Path

import pytest

from mediagate.catalog.loader import load_catalog
from mediagate.catalog.model_table import BEGIN, DOCS, END, model_table, with_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", DOCS)
def test_docs_carry_the_generated_model_table(name: str) -> None:
    text = (ROOT / name).read_text()
    assert with_table(text, model_table(load_catalog())) == text, (
        f"{name} is out of date: run python -m mediagate.catalog.model_table --write"
    )


def test_the_table_names_every_model_price_and_provider() -> None:
    catalog = load_catalog()
    table = model_table(catalog)
    for model in catalog.models.values():
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{model.id}` ")]
        for task_type in model.types.values():
            assert f"`{task_type.name}`: {task_type.price.text()}" in row
        for route in model.routes:
            assert route.provider in row


def test_a_document_without_the_markers_is_an_error() -> None:
    with pytest.raises(ValueError, match="no <!-- models:begin -->"):
        with_table("no table here", "|a|")
    assert with_table(f"x\n{BEGIN}\nold\n{END}\ny", "new") == f"x\n{BEGIN}\nnew\n{END}\ny"
