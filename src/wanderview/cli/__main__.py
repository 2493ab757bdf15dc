"""`python -m wanderview.cli COMMAND ...`: the same as the `wanderview` console script."""

import sys

from wanderview.cli import main

sys.exit(main())
