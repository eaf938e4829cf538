"""``python -m services.cli`` is ``convsim``."""

from services.cli.app import main

main()
