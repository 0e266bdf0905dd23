#!/usr/bin/env bash
# Builds the Debian package: dist/nlb_<version>_<arch>.deb (built without tests, with
# Debian's own compiler and hardening flags from dpkg-buildflags, stripped, dependencies
# from dpkg-shlibdeps). Prints the package's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
rm -rf build-package
# Reproducible: the man pages' dates (scdoc) and the archive's times come from the last commit.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
LDFLAGS="$(dpkg-buildflags --get LDFLAGS) -Wl,-z,now" \
  cmake -S . -B build-package -G Ninja -DCMAKE_BUILD_TYPE=None -DNLB_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
ninja -C build-package -j "$(nproc)" >/dev/null
mkdir -p dist
(cd build-package && cpack -G DEB -B "$PWD/../dist" >/dev/null)
rm -rf dist/_CPack_Packages
version=$(sed -n 's/^project(nlb VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
deb=dist/nlb_${version}_$(dpkg --print-architecture).deb
test -f "$deb" || { echo "package.sh: $deb was not built" >&2; exit 1; }
echo "$deb"
