#!/usr/bin/env bash
# Lints deploy/docker/Dockerfile with two npm linters that run offline and need no install script:
#   dockerfile-utils lint  the Dockerfile validator of the VS Code Docker language server: syntax,
#                          arguments of each instruction, flags, durations, deprecated forms
#                          (any warning fails here, not only errors);
#   dockerfilelint         best-practice rules: tagged base images, no sudo, apt-get habits,
#                          valid ports, valid commands.
# hadolint is not packaged for Debian 12 and its npm wrappers download a binary, so it is not used.
# This script installs nothing. The linters come from tests/deploy/package-lock.json:
#   npm ci --prefix tests/deploy
# Usage: tests/deploy/lint_dockerfile.sh [DOCKERFILE]   (exit 0 clean, 1 findings, 2 tool missing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source_dir=${WSVISOR_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
dockerfile=${1:-$source_dir/deploy/docker/Dockerfile}
bin=${WSVISOR_DEPLOY_NODE_MODULES:-$here/node_modules}/.bin

if ! command -v node >/dev/null; then
  echo "lint_dockerfile: node is not installed (Debian: nodejs)" >&2
  exit 2
fi
for tool in dockerfile-utils dockerfilelint; do
  if [[ ! -x "$bin/$tool" ]]; then
    echo "lint_dockerfile: $tool is missing from $bin: run 'npm ci --prefix tests/deploy'" >&2
    exit 2
  fi
done

status=0
# dockerfile-utils exits 1 only for errors; it prints nothing for a clean file.
findings=$("$bin/dockerfile-utils" lint "$dockerfile") || true
if [[ -n "$findings" ]]; then
  echo "lint_dockerfile: dockerfile-utils found problems in $dockerfile:" >&2
  echo "$findings" >&2
  status=1
fi
# dockerfilelint exits with the number of issues.
if ! findings=$("$bin/dockerfilelint" --output cli "$dockerfile" 2>&1); then
  echo "lint_dockerfile: dockerfilelint found problems in $dockerfile:" >&2
  echo "$findings" >&2
  status=1
fi
if ((status == 0)); then
  echo "lint_dockerfile: $dockerfile: dockerfile-utils and dockerfilelint found nothing"
fi
exit "$status"
