#!/usr/bin/env bash
# Build the one-folder app with PyInstaller and smoke-test it offscreen:
# the window opens, a prediction with the bundled model works, a 5-step training run completes.
#   bash installer/build_pyinstaller.sh          (from an environment with Tokenscope installed)
# Output: build/dist/tokenscope/tokenscope, plus the build time and size on the last lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
python -m pip install --quiet "pyinstaller>=6.10"
started=$(date +%s)
python -m PyInstaller installer/tokenscope.spec --noconfirm --log-level WARN \
  --distpath build/dist --workpath build/work
built=$(( $(date +%s) - started ))
app=build/dist/tokenscope/tokenscope
export QT_QPA_PLATFORM=offscreen TOKENSCOPE_HOME
TOKENSCOPE_HOME=$(mktemp -d)

echo "smoke: version";    "$app" --version
echo "smoke: predict";    "$app" predict "The capital of Indonesia is" --top 3
echo "smoke: window";     TOKENSCOPE_QUIT_AFTER_MS=4000 "$app"
echo "smoke: training"
"$app" train --recipe default --out "$TOKENSCOPE_HOME/runs/smoke" \
  --set steps=5 --set eval_every=5 --set sample_every=5 --set checkpoint_every=5 \
  | tail -n 1 | grep '"status": "completed"'
echo "built in ${built} s; size $(du -sh build/dist/tokenscope | cut -f1)"
