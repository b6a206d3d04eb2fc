#!/usr/bin/env bash
# The project's test command: sets the machine up (scripts/setup.sh), lints, then runs pytest
# with any arguments given (e.g. `bash scripts/test.sh -m 'not e2e'`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/pytest "$@"
