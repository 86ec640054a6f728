#!/bin/sh
# The suite again on the Node.js the deployment installs (the active LTS, doorgw_nodejs_major), not
# only on this machine's Node: that binary (with its headers) comes from the npm registry as
# node-linux-<arch>; the native modules are rebuilt against it in a copy of the tree, so the tree
# itself stays built for the machine's Node. Usage: sh scripts/test-on-lts.sh [major] [vitest args…]
set -eu
cd "$(dirname "$0")/.."
major=${1:-26}
[ $# -gt 0 ] && shift
arch=$(node -p process.arch)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work" # the as-root tests run node from here as another user
npm install --prefix "$work/node" --no-audit --no-fund --no-save --loglevel=error "node-linux-$arch@$major" >/dev/null
lts="$work/node/node_modules/node-linux-$arch"
mkdir "$work/tree"
tar --exclude=./.git -cf - . | tar -xf - -C "$work/tree"
cd "$work/tree"
export PATH="$lts/bin:$PATH"
echo "doorgw on Node $(node --version) (the deployment's LTS)"
npm rebuild --nodedir="$lts" --loglevel=error >/dev/null
sh scripts/build-native.sh
node node_modules/vitest/vitest.mjs run "$@"
