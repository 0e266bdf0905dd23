#!/bin/busybox sh
# shellcheck shell=dash
# /init of the initramfs scripts/bench/verifier-kernels.sh boots under qemu: loads every BPF
# object in /objs with verifier-load (records on the serial console, parsed by the host) and
# powers off. PID 1 must never exit (the kernel would panic), so every step tolerates failure
# and the last one is a forced power-off.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
# libbpf reads nothing from bpffs for a plain load; mounted anyway so that a kernel without
# bpffs shows up here rather than as a puzzling load error.
mount -t bpf bpf /sys/fs/bpf || echo "NLB-NOTE no bpffs"
echo "NLB-KERNEL $(uname -r)"
for obj in /objs/*.bpf.o; do
  name=${obj##*/}
  /bin/verifier-load "${name%.bpf.o}" "$obj" || true
done
echo "NLB-DONE"
poweroff -f
