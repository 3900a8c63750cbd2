from tradegraph.cli import main

raise SystemExit(main())
