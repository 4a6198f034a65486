"""``python -m myriad_frontend.dashboard --mongo-uri …``"""

import sys

from . import main

sys.exit(main())
