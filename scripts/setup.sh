#!/usr/bin/env bash
# Install zoo (core + every first-party plugin, editable, + the example plugin) into the current Python environment.
#   bash scripts/setup.sh          # to use zoo
#   bash scripts/setup.sh --dev    # plus the test-only references (diffusers, transformers, ...) and ruff
# torch is installed first, and only when missing: a bare `pip install torch` can pull a multi-GB CUDA build.
# Set TORCH_SPEC to choose another build (GPU users: install the torch build for your CUDA version first).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore
PIP=("$PY" -m pip install --disable-pip-version-check -q)

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing ${TORCH_SPEC:-torch==2.13.0} (CPU build on this project's machines)"
  "${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}"
fi

extras=""
[ "${1:-}" = "--dev" ] && extras="[test]"
packages=(-e ".${extras}")
for plugin in plugins/*/; do
  [ -f "${plugin}pyproject.toml" ] && packages+=(-e "${plugin}")
done
"${PIP[@]}" "${packages[@]}"
# The tutorial plugin, installed (not editable) the way a stranger installs a third-party plugin.
"${PIP[@]}" ./examples/zoo-plugin-example
echo "setup: installed zoo-core, $(( (${#packages[@]} - 2) / 2 )) first-party plugins and the example plugin"
