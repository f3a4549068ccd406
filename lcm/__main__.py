"""Allow ``python -m lcm``."""

from lcm.cli import main

raise SystemExit(main())
