"""``python -m runbook_lib.sandbox``: the same as ``runbook sandbox``."""

from runbook_lib.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["sandbox", *__import__("sys").argv[1:]]))
