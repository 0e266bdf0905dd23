# Sourced by scripts/package.sh and scripts/test.sh: the build the Debian package is made
# from. Debian's compiler and hardening flags (dpkg-buildflags) with debug information as
# line tables (-g1: the package is stripped, and a test tree keeps its backtraces' lines),
# immediate binding, /usr, and the man pages' dates from the last commit (reproducible).
# Sets SOURCE_DATE_EPOCH and nlb_package_cmake_args (the arguments to configure a tree).
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH
nlb_package_flags() {
  DEB_CFLAGS_MAINT_STRIP=-g DEB_CFLAGS_MAINT_APPEND=-g1 \
    DEB_CXXFLAGS_MAINT_STRIP=-g DEB_CXXFLAGS_MAINT_APPEND=-g1 \
    dpkg-buildflags --get "$1"
}
nlb_package_cmake_args=(
  -DCMAKE_BUILD_TYPE=None
  -DCMAKE_INSTALL_PREFIX=/usr
  "-DCMAKE_C_FLAGS=$(nlb_package_flags CFLAGS) $(nlb_package_flags CPPFLAGS)"
  "-DCMAKE_CXX_FLAGS=$(nlb_package_flags CXXFLAGS) $(nlb_package_flags CPPFLAGS)"
  "-DCMAKE_EXE_LINKER_FLAGS=$(nlb_package_flags LDFLAGS) -Wl,-z,now"
)
