from benchkit.cli import main

raise SystemExit(main())
