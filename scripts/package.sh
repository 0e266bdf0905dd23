#!/usr/bin/env bash
# Builds the Debian package: dist/nlb_<version>_<arch>.deb (built without tests, with
# Debian's own compiler and hardening flags, scripts/package-flags.sh; stripped, dependencies
# from dpkg-shlibdeps). Prints the package's path on its last line.
#   NLB_PACKAGE_TREE=DIR: package the tree DIR instead of building build-package; DIR must be
#   configured with the package's flags (scripts/test.sh's g++ tree is, tests and all: the
#   tests' binaries install nothing), or this refuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
source scripts/package-flags.sh
tree=${NLB_PACKAGE_TREE:-}
if [ -n "$tree" ]; then
  cache=$tree/CMakeCache.txt
  for arg in "${nlb_package_cmake_args[@]}"; do
    # -DNAME=VALUE against the cache's NAME:TYPE=VALUE
    name=${arg#-D}
    name=${name%%=*}
    value=${arg#*=}
    grep -qxF -- "$value" <(sed -n "s/^$name:[A-Z]*=//p" "$cache" 2>/dev/null) || {
      echo "package.sh: $tree is not configured with the package's $name" \
        "(scripts/package-flags.sh)" >&2
      exit 1
    }
  done
else
  tree=build-package
  rm -rf "$tree"
  cmake -S . -B "$tree" -G Ninja "${nlb_package_cmake_args[@]}" -DNLB_TESTS=OFF >/dev/null
fi
ninja -C "$tree" -j "$(nproc)" >/dev/null
mkdir -p dist
dist=$PWD/dist
(cd "$tree" && cpack -G DEB -B "$dist" >/dev/null)
rm -rf dist/_CPack_Packages
version=$(sed -n 's/^project(nlb VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb=dist/nlb_${version}_$(dpkg --print-architecture).deb
test -f "$deb" || { echo "package.sh: $deb was not built" >&2; exit 1; }
echo "$deb"
