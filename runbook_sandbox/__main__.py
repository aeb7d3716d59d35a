"""``python -m runbook_sandbox``: the same as ``runbook-sandbox``."""

import sys

from runbook_sandbox.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
