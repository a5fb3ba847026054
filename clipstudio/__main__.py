import sys

from clipstudio.cli.main import main

sys.exit(main())
