"""`python -m zsnb segment ...` and `python -m zsnb evaluate ...` (see zsnb.cli)."""

import sys

from zsnb.cli import main

sys.exit(main())
