"""The model table in README.md and docs/providers.md, generated from the catalog so
the docs cannot drift from the declarations (tests/catalog/test_model_table.py checks
it; `python -m mediagate.catalog.model_table --write` rewrites both files)."""

import re
import sys
from pathlib import Path

from mediagate.catalog.loader import Catalog, load_catalog

BEGIN, END = "<!-- models:begin -->", "<!-- models:end -->"
DOCS = ("README.md", "docs/providers.md")


def model_table(catalog: Catalog) -> str:
    lines = [
        "| model | output | types and prices (credits) | providers, in order |",
        "|---|---|---|---|",
    ]
    for m in catalog.models.values():
        types = "<br>".join(f"`{t.name}`: {t.price.text()}" for t in m.types.values())
        providers = ", ".join(dict.fromkeys(r.provider for r in m.routes))
        lines.append(f"| `{m.id}` {m.name} | {m.output} | {types} | {providers} |")
    return "\n".join(lines)


def with_table(text: str, table: str) -> str:
    """`text` with the block between the markers replaced by `table`."""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {BEGIN} ... {END} block")
    return pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text, count=1)


def main(argv: list[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    table = model_table(load_catalog())
    if "--write" not in argv:
        print(table)
        return
    for name in DOCS:
        path = root / name
        path.write_text(with_table(path.read_text(), table))
        print(f"wrote the model table into {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
