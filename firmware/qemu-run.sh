#!/usr/bin/env bash
# Cargo runner for `cargo qemu`: runs the firmware ELF ($1) in QEMU's mps2-an386 (Cortex-M4F)
# and decodes its defmt log as it arrives. Exit code: the firmware's (0 = success), 124 on
# timeout.
#   -icount shift=0   1 ns per instruction: SysTick then counts instructions, deterministically
#   semihosting       carries the defmt frames (stdout) and the exit code
# TINYVI_QEMU_TIMEOUT (seconds, default 900) bounds the run.
set -uo pipefail
elf="$1"
command -v qemu-system-arm >/dev/null || { echo "qemu-system-arm not found: apt-get install qemu-system-arm" >&2; exit 127; }
command -v defmt-print >/dev/null || { echo "defmt-print not found: cargo install defmt-print --locked" >&2; exit 127; }
timeout "${TINYVI_QEMU_TIMEOUT:-900}" qemu-system-arm \
  -M mps2-an386 -nographic -monitor none -serial none \
  -semihosting-config enable=on,target=native \
  -icount shift=0 \
  -kernel "$elf" | defmt-print -e "$elf"
exit "${PIPESTATUS[0]}"
