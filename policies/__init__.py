"""The IAM policies, shipped as the data package ``runbook_lib._policies`` (pyproject.toml
maps it to this folder; runbook_lib/data.py finds it; ``runbook policies`` shows them)."""
