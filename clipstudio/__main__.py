import sys

from clipstudio.cli import main

sys.exit(main())
