#!/usr/bin/env bash
# Verifier acceptance of the real BPF objects on kernels other than this one: boots Debian's
# kernels under qemu with a minimal initramfs that loads (never attaches) every object in
# $BUILD/bpf/ and reports each program's verdict; loads them on this host's kernel too.
# Kernels: bullseye's newest 5.10 (older than the 5.15 floor, so stricter than the
# requirement: a program may need a helper or instruction 5.11-5.15 brought, reported as
# "needs 5.1x", which the floor allows) and bookworm's current 6.1. No 5.15 kernel is in
# reach (Debian never shipped one in a suite still served). nlb.bpf.o is the dataplane and
# conn_scan.bpf.o the agent's connection scan; bare, trafficgen, replay and vlan_port are
# test tools, reported separately.
# Verdict per kernel and object: "ok"; "needs V: program: why; ..." (from kernel V <= 5.15,
# missing in this older kernel); "fail: program: verifier message; ..." (anything else,
# including needing more than 5.15). Per program in "programs". Progress, the verdicts and
# the verifier log tails of failures on stderr; last line: one JSON object. Exit 1 when
# nlb.bpf.o or conn_scan.bpf.o fails (not merely "needs") on any kernel.
# Kernel images come from apt with a private configuration (the host's apt state and
# installed kernels stay untouched), cached in $NLB_KERNEL_CACHE (/var/cache/nlb-kernels,
# about 55 MB); apt lists are refreshed once a day, or with NLB_KERNEL_REFRESH=1. qemu uses
# KVM when the CPU offers VT-x/AMD-V, TCG otherwise (NLB_QEMU_ACCEL=kvm|tcg overrides); each
# VM is killed after NLB_VM_TIMEOUT seconds (180). About 25 s with the cache warm under TCG.
#   usage: scripts/bench/verifier-kernels.sh   (as root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD:-build}
cache=${NLB_KERNEL_CACHE:-/var/cache/nlb-kernels}
floor=5.15
objects=(nlb conn_scan bare trafficgen replay vlan_port)
log() { echo "verifier-kernels: [${SECONDS}s] $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run as root"; exit 1; }

packages=(qemu-system-x86 busybox-static cpio gcc libc6-dev libbpf-dev pkg-config python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for o in "${objects[@]}"; do
  [ -f "$build/bpf/$o.bpf.o" ] && continue
  cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" nlb_bpf_objects >/dev/null
  break
done

tmp=$(mktemp -d /tmp/nlb-verifier.XXXXXX)
declare -A vm_pid
# A VM still running when the script is stopped goes with it (timeout passes the signal on).
# `|| true`: under set -e a failing command in the EXIT trap (the VMs have ended: nothing to
# kill) would become the script's exit status.
trap 'kill "${vm_pid[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Private apt tree per suite: own apt.conf (the host's apt.conf.d is not read, so none of its
# hooks run), sources, lists (kept compressed; no binary cache: 15 MB a suite instead of
# 120) and an empty dpkg status; nothing of the host's apt state is read or written.
# Echoes "package version vmlinuz-path".
fetch_kernel() { # name package-regex sources-line...
  local name=$1 regex=$2 d=$cache/apt-$1 pkg ver dir deb
  shift 2
  mkdir -p "$d/lists/partial" "$d/cache" "$d/parts" "$cache/images"
  printf '%s\n' "$@" >"$d/sources.list"
  touch "$d/status"
  cat >"$d/apt.conf" <<CONF
Dir::Etc::Main "/dev/null"; Dir::Etc::Parts "$d/parts";
Dir::Etc::SourceList "$d/sources.list"; Dir::Etc::SourceParts "$d/parts";
Dir::Etc::Preferences "$d/parts/none"; Dir::Etc::PreferencesParts "$d/parts";
Dir::State "$d"; Dir::State::Lists "$d/lists"; Dir::State::status "$d/status";
Dir::Cache "$d/cache"; Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::GzipIndexes "true"; Acquire::CompressionTypes::Order:: "gz";
APT::Architecture "amd64"; APT::Architectures { "amd64"; };
Acquire::Languages "none"; APT::Sandbox::User "root";
CONF
  # apt dates list files by the archive's Release, so a stamp says when they were fetched.
  if [ "${NLB_KERNEL_REFRESH:-0}" = 1 ] || [ -z "$(find "$d/updated" -mmin -1440 2>/dev/null)" ]; then
    log "$name: apt-get update (private lists in $d)"
    # Offline with lists from an earlier run is fine: the cached image still answers.
    if APT_CONFIG=$d/apt.conf apt-get -qq update >&2; then
      touch "$d/updated"
    else
      log "$name: update failed, using cached lists"
    fi
  fi
  # Resolving takes apt-cache seconds a suite: done again only when the lists changed.
  if [ ! "$d/resolved" -nt "$d/updated" ]; then
    pkg=$(APT_CONFIG=$d/apt.conf apt-cache pkgnames linux-image- | grep -E "$regex" | sort -V | tail -n 1)
    [ -n "$pkg" ] || { log "$name: no package matches $regex"; return 1; }
    ver=$(APT_CONFIG=$d/apt.conf apt-cache show --no-all-versions "$pkg" | sed -n 's/^Version: //p')
    echo "$pkg $ver" >"$d/resolved"
  fi
  read -r pkg ver <"$d/resolved"
  dir=$cache/images/${pkg}_$ver
  if [ ! -s "$dir/vmlinuz" ]; then
    log "$name: downloading $pkg $ver"
    mkdir -p "$tmp/dl-$name" "$tmp/x-$name"
    (cd "$tmp/dl-$name" && APT_CONFIG=$d/apt.conf apt-get -qq download "$pkg" >&2)
    deb=$(ls "$tmp/dl-$name"/*.deb)
    # Only /boot: the modules are most of the package and nothing here loads one.
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/x-$name" --wildcards './boot/vmlinuz-*' './boot/config-*'
    rm -rf "$dir.partial"
    mkdir -p "$dir.partial"
    mv "$tmp/x-$name"/boot/vmlinuz-* "$dir.partial/vmlinuz"
    mv "$tmp/x-$name"/boot/config-* "$dir.partial/config"
    rm -rf "$dir" && mv "$dir.partial" "$dir"
    rm -f "$deb"
  fi
  echo "$pkg $ver $dir/vmlinuz"
}

sign='signed-by=/usr/share/keyrings/debian-archive-keyring.gpg'
declare -A kernels
kernels[bullseye]=$(fetch_kernel bullseye '^linux-image-5\.10\.0-[0-9]+-amd64$' \
  "deb [$sign] http://deb.debian.org/debian bullseye main" \
  "deb [$sign] http://deb.debian.org/debian bullseye-updates main" \
  "deb [$sign] http://deb.debian.org/debian-security bullseye-security main")
kernels[bookworm]=$(fetch_kernel bookworm '^linux-image-6\.1\.0-[0-9]+-amd64$' \
  "deb [$sign] http://deb.debian.org/debian bookworm main" \
  "deb [$sign] http://deb.debian.org/debian bookworm-updates main" \
  "deb [$sign] http://deb.debian.org/debian-security bookworm-security main")

# The loader is built here against the host's libbpf, the one the agent's skeletons use, and
# goes into the initramfs with exactly the shared libraries ldd names.
root=$tmp/root
mkdir -p "$root"/{bin,dev,proc,sys,objs}
# shellcheck disable=SC2046 # pkg-config's output is meant to split into words
cc -O2 -Wall -o "$root/bin/verifier-load" scripts/bench/verifier-load.c \
  $(pkg-config --cflags --libs libbpf)
for lib in $(ldd "$root/bin/verifier-load" | grep -o '/[^ ]*'); do
  cp -L --parents "$lib" "$root"
done
cp /bin/busybox "$root/bin/busybox"
cp scripts/bench/verifier-init.sh "$root/init"
chmod 755 "$root/init"
mknod -m 600 "$root/dev/console" c 5 1
for o in "${objects[@]}"; do cp "$build/bpf/$o.bpf.o" "$root/objs/"; done
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$tmp/initrd.gz"

# KVM only with VT-x/AMD-V: a /dev/kvm without them (a paravirtual provider such as kvm-pvm
# inside a cloud VM) hangs a stock kernel silently right after its real-mode setup.
accel=${NLB_QEMU_ACCEL:-}
if [ -z "$accel" ]; then
  accel=tcg
  [ -w /dev/kvm ] && grep -qwE 'vmx|svm' /proc/cpuinfo && accel=kvm
fi
[ "$accel" = kvm ] || log "no hardware virtualisation usable: emulating with TCG (slower)"
# Both VMs at once, one vCPU each: the verifier is single-threaded, and under TCG two
# single-CPU guests side by side take half the time of two dual-CPU guests in turn.
declare -A packages_of
for suite in bullseye bookworm; do
  read -r pkg ver vmlinuz <<<"${kernels[$suite]}"
  log "$suite: booting $pkg $ver"
  # 1 GiB: nlb's tables are preallocated (about 150 MB an object) and the per-program pass
  # creates them once per program. panic=-1 and -no-reboot end the VM if init dies.
  timeout "${NLB_VM_TIMEOUT:-180}" qemu-system-x86_64 -machine "accel=$accel" \
    -cpu "$([ "$accel" = kvm ] && echo host || echo max)" -m 1024 -smp 1 -nodefaults \
    -display none -no-reboot -serial "file:$tmp/console-$suite.log" \
    -kernel "$vmlinuz" -initrd "$tmp/initrd.gz" \
    -append "console=ttyS0 panic=-1 loglevel=3" </dev/null >&2 &
  vm_pid[$suite]=$!
  packages_of[$suite]="$pkg $ver"
done
for suite in bullseye bookworm; do
  wait "${vm_pid[$suite]}" || log "$suite: qemu exited $? (124: timeout)"
  log "$suite: VM done"
  tr -d '\r' <"$tmp/console-$suite.log" | grep -a '^NLB-' >"$tmp/records-$suite" || true
  grep -q '^NLB-DONE' "$tmp/records-$suite" || {
    log "$suite: the VM did not finish; console tail:"
    tr -d '\r' <"$tmp/console-$suite.log" | tail -n 20 >&2
  }
  kr=$(sed -n 's/^NLB-KERNEL //p' "$tmp/records-$suite")
  packages_of[$suite]="${kr:-unknown} ${packages_of[$suite]}"
done

# This host's kernel needs no VM.
log "host: loading on $(uname -r)"
{
  echo "NLB-KERNEL $(uname -r)"
  for o in "${objects[@]}"; do "$root/bin/verifier-load" "$o" "$build/bpf/$o.bpf.o" || true; done
  echo "NLB-DONE"
} >"$tmp/records-host"

for k in bullseye bookworm host; do
  grep '^NLB-\(PROG\|LOG\|NOTE\)' "$tmp/records-$k" | grep -v ' ok$' | sed "s/^/$k: /" >&2 || true
done
python3 - "$floor" "${objects[*]}" "$tmp/records-bullseye" "$tmp/records-bookworm" \
  "$tmp/records-host" "${packages_of[bullseye]}" "${packages_of[bookworm]}" "$(uname -r)" <<'PY'
import json, sys

floor, objects, files, pkgs, host = (sys.argv[1], sys.argv[2].split(), sys.argv[3:6],
                                     sys.argv[6:8], sys.argv[8])
vkey = lambda v: tuple(int(x) for x in v.rstrip("+").split("."))
kernels, programs, meets, all_ok = {}, {}, {o: True for o in objects}, True
packages = {p.split()[0]: " ".join(p.split()[1:]) for p in pkgs if p.split()}
for path in files:
    lines = open(path, errors="replace").read().splitlines()
    name = next((l.split(" ", 1)[1] for l in lines if l.startswith("NLB-KERNEL ")), path)
    done = "NLB-DONE" in lines
    progs = {o: {} for o in objects}
    for l in lines:
        f = l.split(" ", 5)
        if f[0] == "NLB-PROG" and len(f) >= 5 and f[1] in progs:
            progs[f[1]][f[2]] = " ".join(f[4:])
    verdicts = {}
    for o in objects:
        obj = next((l for l in lines if l.startswith(f"NLB-OBJ {o} ")), None)
        p = progs[o]
        if obj is None:
            v = "fail: no result (" + ("VM did not finish" if not done else "loader crashed") + ")"
        elif obj.endswith(" ok"):
            v = "ok"
        elif obj.endswith(" denied"):
            # EPERM before the verifier ran: the kernel's policy, not a verdict on the code
            # (this host's kernel refuses tracing programs, map iterators among them, even
            # to root since 2026-12-02; the VMs' kernels still judge them)
            v = "denied: " + "; ".join(sorted({s[7:] for s in p.values() if s != "ok"}))
        else:
            bad = {k: s for k, s in p.items() if s != "ok"}
            needs = {k: s.split(" ", 2) for k, s in bad.items() if s.startswith("needs ")}
            fails = {k: s[5:] for k, s in bad.items() if s.startswith("fail ")}
            newest = max((n[1] for n in needs.values()), key=vkey, default=None)
            if fails or not needs:
                v = "fail: " + ("; ".join(f"{k}: {w}" for k, w in fails.items())
                                or "object: " + obj.split(" ", 3)[-1])
            elif vkey(newest) > vkey(floor) or vkey(".".join(name.split(".")[:2])) >= vkey(floor):
                # a kernel at or past the floor must have everything the floor has
                v = f"fail: needs {newest} (after the {floor} floor): " + "; ".join(
                    f"{k}: {n[2]}" for k, n in needs.items())
            else:
                v = f"needs {newest}: " + "; ".join(f"{k}: {n[2]}" for k, n in needs.items())
        verdicts[o] = v
        all_ok &= v == "ok"
        meets[o] &= not v.startswith("fail")
    kernels[name] = verdicts
    programs[name] = progs
    for o, v in verdicts.items():
        print(f"verifier-kernels: {name}: {o}: {v}", file=sys.stderr)
print(json.dumps({"floor": floor, "kernels": kernels, "host": host, "packages": packages,
                  "programs": programs, "meets_floor": meets, "all_ok": all_ok}))
sys.exit(0 if meets["nlb"] and meets["conn_scan"] else 1)
PY
