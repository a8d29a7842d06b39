from host_tools.lightclient.check import main

raise SystemExit(main())
