#!/usr/bin/env bash
# The main job: sets up .venv if needed, then runs the live demo (ssma-demo --help for options).
source "$(dirname "$0")/bootstrap.sh"
ssma-demo "$@"
