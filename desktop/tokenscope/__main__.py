from tokenscope.cli import main

raise SystemExit(main())
