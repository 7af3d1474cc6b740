import sys

from sidecar.server.cli import main

sys.exit(main())
