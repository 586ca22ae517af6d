"""``python -m aplab.cli ...``: the console script in a child process (tests, torchrun)."""

from .main import main

raise SystemExit(main())
