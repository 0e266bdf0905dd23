#!/usr/bin/env bash
# The Debian package as an operator meets it: built by scripts/package.sh, clean under lintian,
# installed with dpkg -i on this machine (binaries run, the unit verifies, the man pages
# render, the example config starts an agent that touches nothing), removed with dpkg -r
# (the edited conffile stays) and purged; then installed with apt into a fresh minimal
# Debian 12 (debootstrap) that has none of the build dependencies, where it must run too.
# Run as root by scripts/test.sh after the other tests; leaves the machine as it found it.
set -euo pipefail
cd "$(dirname "$0")/../.."

FAILED=0
fail() { echo "FAIL: $*" >&2; FAILED=1; }
check() { local what=$1; shift; if "$@"; then echo "ok: $what"; else fail "$what"; fi; }

if dpkg-query -W -f='${Status}' nlb 2>/dev/null | grep -q installed; then
  echo "test_package: the nlb package is installed already; remove it first (dpkg -P nlb)" >&2
  exit 1
fi
work=$(mktemp -d /tmp/nlb-package.XXXXXX)
agent_pid=""
netns=nlbpkg-$$
cleanup() {
  if [ -n "$agent_pid" ]; then
    kill -9 "$agent_pid" 2>/dev/null || true
    wait "$agent_pid" 2>/dev/null || true
  fi
  ip netns del "$netns" 2>/dev/null || true
  umount "$work/bpffs" 2>/dev/null || true # before rm -rf, which would walk into it
  dpkg -P nlb >/dev/null 2>&1 || true
  rm -rf /etc/nlb # only what the purge left: the test's own edit
  if [ -d "$work/root" ]; then
    umount "$work/root/proc" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

deb=$(scripts/package.sh | tail -n 1)
version=$(sed -n 's/^project(nlb VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
check "package named nlb_${version}_$(dpkg --print-architecture).deb" \
  test "$(basename "$deb")" = "nlb_${version}_$(dpkg --print-architecture).deb"

# What is in it.
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in ./usr/sbin/nlb-agent ./usr/sbin/nlbadm ./lib/systemd/system/nlb-agent.service \
  ./lib/systemd/system/nlb-bpffs.service \
  ./etc/nlb/nlb.json ./usr/share/man/man8/nlb-agent.8.gz ./usr/share/man/man8/nlbadm.8.gz \
  ./usr/share/man/man5/nlb.json.5.gz ./usr/share/bash-completion/completions/nlbadm \
  ./usr/share/doc/nlb/copyright ./usr/share/doc/nlb/changelog.gz; do
  check "contains $f" grep -qx "$f" <<<"$contents"
done
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libbpf1 libssl3 libsystemd0 libstdc++6 libc6; do
  check "depends on $lib ($depends)" grep -q "$lib" <<<"$depends"
done
check "/etc/nlb/nlb.json is a conffile" \
  bash -c "dpkg-deb --ctrl-tarfile '$deb' | tar -xO ./conffiles | grep -qx /etc/nlb/nlb.json"
lint=$(lintian --fail-on error "$deb" 2>&1 | grep -v 'running with root privileges' || true)
check "lintian: no errors (${lint:-clean})" test -z "$(grep '^E:' <<<"$lint" || true)"

# Installed on this machine.
check "dpkg -i" dpkg -i "$deb"
check "nlb-agent --version" test "$(/usr/sbin/nlb-agent --version)" = "nlb-agent $version"
check "nlbadm --version" test "$(/usr/sbin/nlbadm --version)" = "nlbadm $version"
check "nlb-agent --help" bash -c '/usr/sbin/nlb-agent --help | grep -q "^usage: nlb-agent"'
check "nlbadm --help" bash -c '/usr/sbin/nlbadm --help | grep -q "^Usage: nlbadm"'
verify=$(systemd-analyze verify /lib/systemd/system/nlb-agent.service \
  /lib/systemd/system/nlb-bpffs.service 2>&1 || echo "exit $?")
check "systemd-analyze verify: clean (${verify:-no output})" test -z "$verify"
for page in nlb-agent nlbadm nlb.json; do
  path=$(man -w "$page")
  warnings=$(MANWIDTH=80 man --warnings=all -l "$path" 2>&1 >/dev/null)
  check "man $page renders ($path) without warnings" test -z "$warnings"
done
check "bash completion loads" bash -c 'source /usr/share/bash-completion/completions/nlbadm && complete -p nlbadm'
# The example config sets no interface: an agent started with it waits for `nlbadm attach`
# and changes nothing on the host. In a network namespace of its own, with a link to leave
# alone: scripts/test.sh runs this test beside the others, which make and remove links.
ip netns add "$netns"
ip -n "$netns" link add nlbpkg0 type veth peer name nlbpkg1
ip -n "$netns" link set nlbpkg0 up && ip -n "$netns" link set nlbpkg1 up
links() { ip -n "$netns" -o link | sed 's/^[0-9]*: //' | sort; }
links_before=$(links)
mkdir -p "$work/bpffs" && mount -t bpf bpf "$work/bpffs"
ip netns exec "$netns" /usr/sbin/nlb-agent --config /etc/nlb/nlb.json --socket "$work/nlb.sock" \
  --pin-dir "$work/bpffs/nlb" --state-dir "$work/state" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 50); do [ -S "$work/nlb.sock" ] && break; sleep 0.1; done
check "the example config: agent up, not attached" \
  test "$(/usr/sbin/nlbadm --socket "$work/nlb.sock" --json query |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["host"]["attached"])')" = False
check "the example config: no interface changed" test "$(links)" = "$links_before"
kill -TERM "$agent_pid" 2>/dev/null || true # it may have exited already (its log says why)
wait "$agent_pid" || true
agent_pid=""
umount "$work/bpffs"

# Removed: the binaries go, the operator's edited conffile and the agent's state stay; purged:
# they go too. The state as the unit leaves it: a pushed configuration in its StateDirectory
# (which a later installation's agent would run instead of its nlb.json), the RuntimeDirectory.
sed -i 's/"priority": 1/"priority": 7/' /etc/nlb/nlb.json
mkdir -p /var/lib/nlb /run/nlb
echo '{}' >/var/lib/nlb/pushed.json
check "dpkg -r" dpkg -r nlb
check "binaries removed" test ! -e /usr/sbin/nlb-agent -a ! -e /usr/sbin/nlbadm
check "units removed" test ! -e /lib/systemd/system/nlb-agent.service -a ! -e /lib/systemd/system/nlb-bpffs.service
check "edited conffile kept" grep -q '"priority": 7' /etc/nlb/nlb.json
check "the pushed configuration kept" test -e /var/lib/nlb/pushed.json
check "dpkg -P" dpkg -P nlb
check "purge removes the conffile" test ! -e /etc/nlb/nlb.json
check "purge removes /var/lib/nlb and /run/nlb" test ! -e /var/lib/nlb -a ! -e /run/nlb

# A fresh Debian 12 with none of the build dependencies: apt resolves the runtime ones.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
# With what a booted system needs besides (systemd, dbus, iproute2, python3): none of it builds
# anything, and NLB_KEEP_ROOT=DIR keeps this root for tests/package/test_systemd.sh to boot.
if debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2,python3 bookworm \
  "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  mount -t proc proc "$work/root/proc"
  cp "$deb" "$work/root/tmp/"
  check "fresh Debian 12: apt-get install ./$(basename "$deb")" \
    chroot "$work/root" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "/tmp/$(basename "$deb")"
  check "fresh Debian 12: no compiler, no -dev package" \
    test -z "$(chroot "$work/root" dpkg-query -W -f='${Package}\n' | grep -E -- '-dev$|^g\+\+|^clang' || true)"
  check "fresh Debian 12: nlb-agent runs" test "$(chroot "$work/root" nlb-agent --version)" = "nlb-agent $version"
  check "fresh Debian 12: nlbadm runs" \
    test "$(chroot "$work/root" nlbadm --json ip2mac 192.0.2.100 | python3 -c 'import json,sys; print(json.load(sys.stdin)["mac"])')" = "02:bf:c0:00:02:64"
  umount "$work/root/proc"
  if [ -n "${NLB_KEEP_ROOT:-}" ]; then
    rm -rf "$NLB_KEEP_ROOT"
    mv "$work/root" "$NLB_KEEP_ROOT"
  fi
else
  tail -n 5 "$work/debootstrap.log" >&2
  fail "debootstrap of a fresh Debian 12 failed"
fi

((FAILED)) && exit 1
echo PASS
