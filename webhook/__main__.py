"""`python -m webhook` is the `podgate` command."""

import sys

from webhook.cli import main

sys.exit(main())
