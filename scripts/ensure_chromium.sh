#!/bin/sh
# Install Debian's headless-capable `chromium` for the report's browser test when it is missing.
# Always exits 0: where it cannot be installed, tests/test_report.py skips with the reason.
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
        echo "ensure_chromium: /usr/bin/chromium missing and not root; browser test will skip" >&2
        exit 0
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_chromium: no apt-get; browser test will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y chromium >/dev/null 2>&1; } \
    || echo "ensure_chromium: apt-get install chromium failed; browser test will skip" >&2
exit 0
