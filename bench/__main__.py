"""``python -m bench``: run the benchmark suite (options: ``python -m bench -h``)."""

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
