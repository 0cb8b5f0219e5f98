"""`python -m spendwatch.cli ...`: what the tests and the demo run."""

import sys

from spendwatch.cli import main

sys.exit(main())
