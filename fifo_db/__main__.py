from fifo_db.cli import main

raise SystemExit(main())
