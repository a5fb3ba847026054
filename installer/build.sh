#!/usr/bin/env bash
# Build the one-folder app (dist/ClipStudio/) on Linux and self-test it offline, as a first launch would.
#
#   bash installer/build.sh                # build + self-test
#   bash installer/build.sh --no-selftest  # build only
#
# Uses .venv (created by installer/setup-env.sh when missing), installs the pinned build tools with the
# torch constraint, runs PyInstaller on installer/clipstudio.spec, then runs the frozen
# `ClipStudio --selftest` headless (QT_QPA_PLATFORM=offscreen) with outbound network blocked: in a new
# network namespace (`unshare -rn`, only a loopback that is down) where the kernel allows it, otherwise
# with HF_HUB_OFFLINE=1 and the self-test's own socket guard alone (it always runs, and fails the test on
# any connect or DNS lookup). Prints the build time, the bundle size and its largest items.
set -euo pipefail
cd "$(dirname "$0")/.."

selftest=1
for arg in "$@"; do
    case "$arg" in
        --no-selftest) selftest=0 ;;
        *) echo "usage: bash installer/build.sh [--no-selftest]" >&2; exit 2 ;;
    esac
done

if [ ! -x .venv/bin/python ]; then
    bash installer/setup-env.sh
fi
PY=.venv/bin/python
echo "== build tools (pinned)"
"$PY" -m pip --disable-pip-version-check install -q -c installer/constraints.txt -r installer/requirements-build.txt

echo "== PyInstaller: installer/clipstudio.spec -> dist/ClipStudio/"
start=$(date +%s)
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller installer/clipstudio.spec
build_s=$(( $(date +%s) - start ))
bundle=dist/ClipStudio
test -x "$bundle/ClipStudio"

echo "== bundle: $(du -sh "$bundle" | cut -f1) in $(find "$bundle" -type f | wc -l) files, built in ${build_s} s"
# (sort | head: head closes the pipe early, which pipefail would report as a failure)
echo "-- largest items under $bundle/_internal (MB)"
du -sm "$bundle"/_internal/* | sort -rn | head -10 || true
echo "-- largest files (MB)"
find "$bundle" -type f -printf '%s\t%P\n' | sort -rn | head -10 | awk -F'\t' '{printf "%8.1f  %s\n", $1/1048576, $2}' || true

if [ "$selftest" -eq 0 ]; then
    exit 0
fi

# A first launch: empty user data and settings folders, no network.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
report=build/selftest.json
rm -f "$report"
run=(env QT_QPA_PLATFORM=offscreen CLIPSTUDIO_HOME="$home/data" XDG_CONFIG_HOME="$home/config"
     HF_HOME="$home/hf" "$bundle/ClipStudio" --selftest --report "$report")
if unshare -rn true 2>/dev/null; then
    blocker="unshare -rn (new network namespace: no route out) + the self-test's socket guard"
    run=(unshare -rn "${run[@]}")
else
    blocker="HF_HUB_OFFLINE=1 + the self-test's socket guard (unshare -rn is not allowed here)"
    run=(env HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "${run[@]}")
fi
echo "== frozen self-test, network blocked by: $blocker"
start=$(date +%s)
set +e
"${run[@]}"
rc=$?
set -e
echo "== self-test exit code $rc after $(( $(date +%s) - start )) s; report $report"
echo "build: ${build_s} s; bundle: $(du -sh "$bundle" | cut -f1)"
exit "$rc"
