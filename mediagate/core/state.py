"""What a running app holds, built once by the app factory and reached through `app.state`."""

from dataclasses import dataclass

from fastapi import Request

from mediagate.catalog.loader import Catalog
from mediagate.core.db import Database
from mediagate.core.settings import Settings


@dataclass
class CoreState:
    settings: Settings
    db: Database
    catalog: Catalog


def core_state(request: Request) -> CoreState:
    state: CoreState = request.app.state.core
    return state
