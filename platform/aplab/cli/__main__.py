"""``python -m aplab.cli ...``: the console script in a child process (tests, torchrun)."""

from .command import main

raise SystemExit(main())
