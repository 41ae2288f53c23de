import sys
from pathlib import Path

# The helper modules sit beside the tests; tests/infra is not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
