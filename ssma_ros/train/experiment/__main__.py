"""`python -m ssma_ros.train.experiment`: the same as `ssma-experiment`."""

import sys

from ssma_ros.train.experiment.cli import main

sys.exit(main())
