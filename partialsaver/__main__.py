"""``python -m partialsaver ...``: the same CLI as the ``partialsaver`` console script."""

import sys

from partialsaver.cli import main

if __name__ == "__main__":
    sys.exit(main())
