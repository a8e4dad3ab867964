from neurocredit.cli import main

raise SystemExit(main())
