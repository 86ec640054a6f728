#!/bin/sh
# The system packages the tests use, installed when missing (Debian, Ubuntu, Raspberry Pi OS):
# run by `npm test` (pretest) and by .ci/run, so the README's one test command works on a fresh
# machine. Installs as root, or through `sudo -n`; otherwise says what to install and fails.
set -eu

has_lib() { { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "$1"; }

need=""
command -v openssl >/dev/null 2>&1 || need="$need openssl"                         # independent QR signatures
{ [ -x /usr/sbin/mosquitto ] || [ -x /usr/bin/mosquitto ]; } || need="$need mosquitto"   # a real broker
has_lib 'libusb-1.0.so.0' || need="$need libusb-1.0-0"                            # node-hid's native library
has_lib 'libudev.so.1' || need="$need libudev1"
command -v ansible-playbook >/dev/null 2>&1 || need="$need ansible"               # the deployment role, run for real
command -v ansible-lint >/dev/null 2>&1 || need="$need ansible-lint"
command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"                # verify/security of the unit
command -v unshare >/dev/null 2>&1 || need="$need util-linux"                     # mount namespaces (GPIO, ENOSPC)
{ [ -x /usr/bin/chromium ] || [ -x /usr/bin/chromium-browser ]; } || need="$need chromium"   # the console in a real browser
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"          # the site journal (doorgw collector)
command -v socat >/dev/null 2>&1 || need="$need socat"                            # pseudo-terminal pairs for serial devices
{ command -v cc >/dev/null 2>&1 && [ -f /usr/include/linux/seccomp.h ]; } || need="$need gcc libc6-dev"   # the fake GPIO kernel, the seccomp launcher

[ -z "$need" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  run() { "$@"; }
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  run() { sudo -n "$@"; }
else
  echo "The tests need these system packages:$need" >&2
  echo "Install them with: sudo apt-get install -y$need   (then run npm test again)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "The tests need:$need (no apt-get here: install them with this system's package manager)" >&2
  exit 1
fi
echo "Installing the system packages the tests use:$need" >&2
run apt-get update -qq
run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need
# The tests start their own brokers on free ports; a packaged service is not needed.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then run systemctl stop mosquitto || true; fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then run systemctl stop postgresql || true; fi
