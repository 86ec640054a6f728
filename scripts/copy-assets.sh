#!/bin/sh
# The console's pages (plain HTML, CSS and ES modules) go with the build: a release is dist/.
set -eu
cd "$(dirname "$0")/.."
rm -rf dist/web/assets
mkdir -p dist/web
cp -r src/web/assets dist/web/assets
rm -rf dist/collector/assets
mkdir -p dist/collector
cp -r src/collector/assets dist/collector/assets
