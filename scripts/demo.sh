#!/usr/bin/env bash
# The README's main job: set the machine up, then build sample-project/ into an image, push it to
# a local registry and run it (scripts/demo.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
.venv/bin/python scripts/demo.py
