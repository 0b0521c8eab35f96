"""``python -m selfhost.deploy.launcher``: see the package docstring."""

from selfhost.deploy.launcher import main

main()
