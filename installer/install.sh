#!/usr/bin/env bash
# Install Tokenscope for the current user: a private virtual environment, a launcher on the
# PATH, a desktop entry and icons. Undo with installer/uninstall.sh.
#
#   bash installer/install.sh                # from a checkout of the repository
#   bash installer/install.sh --no-launch    # do not open the window at the end
#
# Where things go (XDG locations of $HOME):
#   ~/.local/share/tokenscope/venv            the virtual environment
#   ~/.local/bin/tokenscope                   the launcher
#   ~/.local/share/applications/tokenscope.desktop
#   ~/.local/share/icons/hicolor/*/apps/tokenscope.{png,svg}
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/.." && pwd)
launch=1
for arg in "$@"; do
  case "$arg" in
    --no-launch) launch=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

data_home=${XDG_DATA_HOME:-$HOME/.local/share}
app_dir="$data_home/tokenscope"
venv="$app_dir/venv"
bin_dir="$HOME/.local/bin"
python=${PYTHON:-python3}

echo "Tokenscope: creating a private environment in $venv"
mkdir -p "$app_dir" "$bin_dir" "$data_home/applications"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# torch 2.13.0: the CPU build these machines install from local disk (see docs/install.md).
"$venv/bin/python" -m pip install --quiet "torch==2.13.0" "$source_dir"

cat > "$bin_dir/tokenscope" <<LAUNCHER
#!/bin/sh
exec "$venv/bin/tokenscope" "\$@"
LAUNCHER
chmod +x "$bin_dir/tokenscope"

icons="$source_dir/resources/icons"
for size in 16 24 32 48 64 128 256 512; do
  target="$data_home/icons/hicolor/${size}x${size}/apps"
  mkdir -p "$target"
  cp "$icons/tokenscope-$size.png" "$target/tokenscope.png"
done
mkdir -p "$data_home/icons/hicolor/scalable/apps"
cp "$icons/tokenscope.svg" "$data_home/icons/hicolor/scalable/apps/tokenscope.svg"

sed -e "s|@EXEC@|$bin_dir/tokenscope|" "$here/tokenscope.desktop.in" \
  > "$data_home/applications/tokenscope.desktop"
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database "$data_home/applications" >/dev/null 2>&1 || true
fi

echo "Tokenscope is installed: run 'tokenscope' (in $bin_dir) or find it in your applications."
case ":$PATH:" in
  *":$bin_dir:"*) ;;
  *) echo "Note: $bin_dir is not on your PATH; add it to start Tokenscope by name." ;;
esac
if [ "$launch" = 1 ]; then
  exec "$bin_dir/tokenscope"
fi
