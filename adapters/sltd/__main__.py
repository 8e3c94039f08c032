"""``python -m adapters.sltd ...`` runs ``rmas sltd ...``."""

import sys

from rmas.cli import main

sys.exit(main(["sltd", *sys.argv[1:]]))
