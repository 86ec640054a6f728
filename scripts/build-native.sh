#!/bin/sh
# Build doorgw's GPIO character-device addon (src/io/gpio/native/gpio_cdev.c) with the system C
# compiler against Node's own headers: no node-gyp, no download. Without a compiler or the headers
# the character-device backend is unavailable (and says so); nothing else depends on it.
set -eu
cd "$(dirname "$0")/.."
out=dist/io/gpio/gpio_cdev.node
inc=$(node -p "require('path').resolve(process.execPath, '../../include/node')")
[ -f "$inc/node_api.h" ] || inc=/usr/include/node
if ! command -v cc >/dev/null 2>&1 || [ ! -f "$inc/node_api.h" ]; then
  echo "gpio_cdev: no C compiler or Node headers here; the GPIO character-device backend is unavailable (install build-essential and Node's headers)" >&2
  exit 0
fi
mkdir -p dist/io/gpio
# Built already from this source (Node-API: one build serves every Node version).
[ "$out" -nt src/io/gpio/native/gpio_cdev.c ] && [ "$(wc -c < "$out")" -gt 0 ] && exit 0
cc -O2 -Wall -Wextra -Werror -shared -fPIC -pthread -I"$inc" -o "$out.tmp" src/io/gpio/native/gpio_cdev.c
mv "$out.tmp" "$out"
