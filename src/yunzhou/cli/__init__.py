"""The ``yunzhou`` command line. It reaches the server only through ``yunzhou.client``."""

from yunzhou.cli.app import app, main
from yunzhou.cli.common import CliState

__all__ = ["CliState", "app", "main"]
