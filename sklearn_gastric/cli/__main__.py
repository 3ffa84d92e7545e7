"""``python -m sklearn_gastric.cli``: the ``sklearn-gastric`` command."""

import sys

from . import main

sys.exit(main())
