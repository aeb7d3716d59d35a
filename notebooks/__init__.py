"""The step notebooks, shipped as the data package ``runbook_lib._notebooks`` (pyproject.toml
maps it to this folder; runbook_lib/data.py finds it). Nothing to import."""
