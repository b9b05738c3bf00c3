from tokenscope.train.cli import main

raise SystemExit(main())
