"""The three reference factories, as data: TOML specs and SOURCES.md.

Installed as the data package ``twin.factories`` (see pyproject.toml); read them with
:func:`twin.builtins.factories`.
"""
