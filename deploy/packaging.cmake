# `cpack -G DEB` (scripts/package.sh): nlb_<version>_<arch>.deb. Runtime dependencies come
# from dpkg-shlibdeps over the installed binaries (libbpf, libelf, zlib, libssl, libsystemd,
# libstdc++), so they follow whatever the build linked.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME nlb)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "nlb developers <nlb@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Network Load Balancing for Linux (XDP)")
# CPack puts the summary on the Description line itself: this is only the extended text.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
    "A cluster of up to 64 hosts shares virtual IP addresses on one L2 segment\n\
with no dispatcher: every host receives every packet, an XDP program keeps\n\
the packets whose bucket the host owns, and nlb-agent exchanges heartbeats,\n\
converges on membership and rewrites bucket ownership after every change.\n\
Port rules, affinity, weights, drainstop, remote control and Prometheus\n\
metrics, in the manner of Windows NLB. nlbadm is the operator's tool.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.org/nlb")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Only what an operator installs; the tests' helpers are not part of the package.
set(CPACK_COMPONENTS_ALL Unspecified)
include(CPack)
