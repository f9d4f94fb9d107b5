"""``python -m yunzhou.router``: see ``yunzhou.router.cli``."""

from yunzhou.router.cli import main

raise SystemExit(main())
