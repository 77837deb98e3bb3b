"""``python -m xfrm_offload.client.cli``: xfrmctl without its console script."""

import sys

from . import main

sys.exit(main())
