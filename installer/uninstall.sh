#!/usr/bin/env bash
# Remove what installer/install.sh installed. Settings, recent models and training runs in
# ~/.local/share/tokenscope are kept unless --all is given.
set -euo pipefail
all=0
[ "${1:-}" = "--all" ] && all=1
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
rm -rf "$data_home/tokenscope/venv"
rm -f "$HOME/.local/bin/tokenscope" "$data_home/applications/tokenscope.desktop"
rm -f "$data_home"/icons/hicolor/*/apps/tokenscope.png "$data_home/icons/hicolor/scalable/apps/tokenscope.svg"
if [ "$all" = 1 ]; then
  rm -rf "$data_home/tokenscope"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database "$data_home/applications" >/dev/null 2>&1 || true
fi
echo "Tokenscope is uninstalled."
