"""``python -m cl_spoof`` (also what torchrun launches)."""

from cl_spoof.cli import main

if __name__ == "__main__":
    main()
