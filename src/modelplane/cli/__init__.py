"""The ``modelplane`` command line (Typer + Rich): one module per noun, wired in :mod:`.main`.

Importing it is cheap: commands import the registry, the database layer, Rich and uvicorn when
they run, and no model engine is imported unless a model of its flavor is loaded.
"""

__all__: list[str] = []
