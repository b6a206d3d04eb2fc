#!/usr/bin/env bash
# The README's main job: set the machine up, then build sample-project/ with
# `hatch build -t jib:push` into an image, push it to a local registry, run it and ask it for a
# page (scripts/demo.py).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# hatch drives the demo; until it is in pyjib's dev extra, install it here.
[[ -x .venv/bin/hatch ]] || .venv/bin/python -m pip install --quiet --disable-pip-version-check 'hatch>=1.16'
.venv/bin/python scripts/demo.py
