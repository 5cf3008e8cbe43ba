#!/usr/bin/env bash
# The test command: sets up .venv if needed, then runs the whole suite.
source "$(dirname "$0")/bootstrap.sh"
python -m pytest test -q -p no:cacheprovider "$@"
