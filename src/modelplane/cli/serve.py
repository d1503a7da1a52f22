"""``modelplane serve``: the registry's REST API (FastAPI) under uvicorn."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from modelplane.cli.context import state

__all__ = ["APP_FACTORY", "serve"]

#: Import string of the ASGI app factory uvicorn runs (``factory=True``).
APP_FACTORY = "modelplane.api.app:create_app"


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the REST API (OpenAPI at /docs) until interrupted.

    Example: modelplane serve --host 0.0.0.0 --port 8000
    """
    import uvicorn

    st = state(ctx)
    st.settings()  # a bad configuration fails here, in one line, not in the server's lifespan
    if st.home is not None:
        # The app builds its own settings in its lifespan: hand --home over the usual way.
        os.environ["MODELPLANE_HOME"] = str(st.home)
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port)
