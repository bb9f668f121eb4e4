"""``python -m benchmarks [options]`` is ``twin compare [options]``: the side-by-side benchmark."""

import sys

from twin.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
