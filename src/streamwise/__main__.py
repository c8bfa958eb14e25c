import sys

from streamwise.cli import main

sys.exit(main())
