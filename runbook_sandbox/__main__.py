"""``python -m runbook_sandbox``: the same as ``runbook-sandbox``, and it exits at once when
stopped."""

import sys

from runbook_sandbox.cli import serve_and_exit

if __name__ == "__main__":
    serve_and_exit(sys.argv[1:])
