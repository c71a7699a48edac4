import sys

from twin_service.fmu.build import main

sys.exit(main())
