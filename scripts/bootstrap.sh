# Sourced by scripts/demo.sh and scripts/test.sh: makes .venv (once) and activates it.
# Idempotent: a stamp file records what was installed; a change of requirements reinstalls.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SSMA_VENV:-$ROOT/.venv}"

# A sourced ROS 2 install brings rclpy, message_filters, cv_bridge and OpenCV: use them.
if python3 -c 'import rclpy' >/dev/null 2>&1; then
  MODE=ros
  PY=python3
else
  MODE=pip
  # The ROS 2 wheels on PyPI are built for CPython 3.11.
  PY="$(command -v python3.11 || true)"
  if [ -z "$PY" ]; then
    echo "ssma_ros: no ROS 2 install is sourced and python3.11 is not on PATH." >&2
    echo "  Either 'source /opt/ros/<distro>/setup.bash' first, or install Python 3.11" >&2
    echo "  (e.g. 'apt-get install python3.11 python3.11-venv')." >&2
    exit 1
  fi
fi

REQS=(requirements/base.txt requirements/test.txt)
if [ "$MODE" = pip ]; then REQS+=(requirements/ros-wheels.txt requirements/opencv.txt); fi
STAMP_WANT="$MODE $(cd "$ROOT" && cat "${REQS[@]}" setup.py | sha256sum | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "ssma_ros: creating $VENV ($MODE mode)"
  if [ "$MODE" = ros ]; then
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
if [ "$(cat "$VENV/.ssma_stamp" 2>/dev/null)" != "$STAMP_WANT" ]; then
  echo "ssma_ros: installing pinned dependencies into $VENV"
  ARGS=()
  for r in "${REQS[@]}"; do ARGS+=(-r "$ROOT/$r"); done
  # (this machine's pip config names local indexes that may be absent: hide those warnings)
  python -m pip install --quiet --disable-pip-version-check "${ARGS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
  python -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
  echo "$STAMP_WANT" > "$VENV/.ssma_stamp"
fi

# Keep ROS traffic of this checkout on this machine, in a domain of its own unless one is set.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 90) + 10 ))}"
cd "$ROOT"
