"""``python -m infra.cli``: the same as the ``strata`` command."""

import sys

from infra.cli.main import main

sys.exit(main())
