"""`python -m yunzhou …` is the same as the `yunzhou` command."""

from yunzhou.cli import main

main()
