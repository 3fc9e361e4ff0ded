"""Makes the IR builder helpers (``xv_cpu_irb``) importable from the tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
