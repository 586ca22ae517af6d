"""``python -m aplab`` (and ``torchrun -m aplab train ...``): the aplab command line."""

from .cli import main

raise SystemExit(main())
