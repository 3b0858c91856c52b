"""`python -m sandbox_platform.cli`: the same as `sbx`."""

from sandbox_platform.cli.app import main

main()
