"""Allow ``python -m lcm``."""

import sys

try:
    from lcm.cli import main
except Exception:
    # A module lcm.cli imports failed to import: the traceback goes to the job's log
    # (--log-file) too, as for any failure once lcm runs (lcm.startup imports no lcm module).
    from lcm.startup import log_startup_failure

    raise SystemExit(log_startup_failure(sys.argv[1:], "lcm")) from None

raise SystemExit(main())
