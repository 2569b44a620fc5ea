import sys

from streamre.cli.main import main

sys.exit(main())
