"""The built-in demand scenarios, as data.

Installed as the data package ``twin.scenarios`` (see pyproject.toml); read them with
:func:`twin.builtins.scenarios`.
"""
