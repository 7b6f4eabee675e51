"""``python -m fakes --host 127.0.0.1 --port 9100``."""

import sys

from fakes.cli import main

sys.exit(main(sys.argv[1:]))
