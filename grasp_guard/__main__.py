"""`python -m grasp_guard` runs the command line."""

from grasp_guard.cli import main

raise SystemExit(main())
