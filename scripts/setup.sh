#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (as root) to where pyjib's demo and tests run: installs the
# tools they drive (docker-registry, podman with runc, skopeo, mmdebstrap), creates .venv and
# installs pyjib into it with its dev extra. Installs only what is missing; safe to re-run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(docker-registry podman runc skopeo mmdebstrap uidmap fuse-overlayfs)
# Debian's python3 can only make a venv once python3-venv (ensurepip) is installed.
[[ -x .venv/bin/python ]] || packages+=(python3 python3-venv)

missing=()
for pkg in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$pkg")
  fi
done
if ((${#missing[@]})); then
  sudo=()
  [[ $EUID -eq 0 ]] || sudo=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  echo "setup.sh: installing ${missing[*]}" >&2
  # A fresh machine or container may have no package lists yet; fetch them only if needed.
  if ! "${sudo[@]}" apt-get install -y "${missing[@]}"; then
    "${sudo[@]}" apt-get update
    "${sudo[@]}" apt-get install -y "${missing[@]}"
  fi
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
