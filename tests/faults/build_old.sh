#!/usr/bin/env bash
# build_old.sh [REV]: builds nlb-agent and nlbadm of revision REV of this repository (its
# history: a clone has it) into $BUILD/old-REV and prints that directory; a second call
# finds it built. Debug without debug information, by clang: the old agent only has to
# behave, -O0 with no -g builds in two fifths of the time, and clang takes two thirds of
# g++'s time at -O0 (50 s against 77 here).
# REV defaults to 249a391, the last commit before heartbeat wire format 1.2 (ed7903f): the
# release the rolling-upgrade test upgrades from. scripts/test.sh builds it with the rest.
set -euo pipefail
rev=${1:-249a391}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
dir=$build/old-$rev
# One build at a time: scripts/test.sh builds it beside the tests, and a test that needs it
# first waits here for that build rather than starting a second one in the same directory.
mkdir -p "$build"
exec 9>"$dir.lock"
flock 9
if [ -x "$dir/build/agent/daemon/nlb-agent" ] && [ -x "$dir/build/cli/nlbadm" ]; then
  echo "$dir/build"
  exit 0
fi
if ! git -C "$root" cat-file -e "$rev^{commit}" 2>/dev/null; then
  # A shallow clone: ask the remote it came from for the history (bounded in time).
  timeout 120 git -C "$root" fetch -q --unshallow 2>/dev/null || true
fi
if ! git -C "$root" cat-file -e "$rev^{commit}" 2>/dev/null; then
  echo "build_old.sh: revision $rev is not in $root's history (a shallow clone, no remote?)" >&2
  exit 2
fi
rm -rf "$dir"
mkdir -p "$dir/src"
git -C "$root" archive "$rev" | tar -x -C "$dir/src"
{
  CC=clang CXX=clang++ cmake -S "$dir/src" -B "$dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG= -DCMAKE_CXX_FLAGS_DEBUG=
  ninja -C "$dir/build" nlb-agent nlbadm
} >"$dir/build.log" 2>&1 || {
  echo "build_old.sh: building $rev failed (last lines of $dir/build.log):" >&2
  tail -n 20 "$dir/build.log" >&2
  exit 1
}
echo "$dir/build"
