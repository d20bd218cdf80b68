# U-Boot boot script of an Anju gateway: A/B slot choice with boot counting, for RAUC's U-Boot
# backend (firmware/update/system.conf, docs/UPDATES.md). Compile it into the boot partition with
#   mkimage -A arm64 -T script -C none -d boot.cmd boot.scr       (Debian: u-boot-tools)
# NOT YET RUN ON A BOARD: tests/update/rauc_test.sh does what this script does to the environment
# (one attempt taken per boot) by hand; see docs/UPDATES.md, "What is missing".
#
# The contract with RAUC, all in U-Boot's environment (fw_printenv / fw_setenv on Linux):
#   BOOT_ORDER   slots to try, first first ("A B" or "B A"); RAUC puts a newly installed slot
#                first, and drops a slot marked bad
#   BOOT_A_LEFT  attempts left for A (hex, as RAUC writes it); set to 3 by RAUC on install and on
#   BOOT_B_LEFT  every `rauc status mark-good`, 0 on mark-bad. This script takes one per boot.
# A slot whose attempts are used up is skipped: three boots of a new slot that never reach
# mark-good (kernel panic, hang caught by the watchdog, anjud failing) fall back to the other.
#
# Board-specific variables, set in the default environment: mmcdev (the eMMC), slotpart_A and
# slotpart_B (partition numbers of rootfs-a / rootfs-b), console, and the usual
# kernel_addr_r, fdt_addr_r, ramdisk_addr_r (kernel_comp_addr_r/kernel_comp_size for a
# compressed arm64 kernel).

test -n "${BOOT_ORDER}" || setenv BOOT_ORDER "A B"
test -n "${BOOT_A_LEFT}" || setenv BOOT_A_LEFT 3
test -n "${BOOT_B_LEFT}" || setenv BOOT_B_LEFT 3

setenv slot
for BOOT_SLOT in "${BOOT_ORDER}"; do
  if test "x${slot}" != "x"; then
    # a slot was chosen: skip the rest
  elif test "x${BOOT_SLOT}" = "xA"; then
    if test ${BOOT_A_LEFT} -gt 0; then
      setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1
      setenv slot A
      setenv slotpart ${slotpart_A}
      setenv rootlabel rootfs-a
    fi
  elif test "x${BOOT_SLOT}" = "xB"; then
    if test ${BOOT_B_LEFT} -gt 0; then
      setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1
      setenv slot B
      setenv slotpart ${slotpart_B}
      setenv rootlabel rootfs-b
    fi
  fi
done

if test "x${slot}" = "x"; then
  # Both slots used up their attempts: give both another three rather than brick the gateway.
  echo "anju: no slot has attempts left; resetting both to 3"
  setenv BOOT_A_LEFT 3
  setenv BOOT_B_LEFT 3
  saveenv
  reset
fi

echo "anju: booting slot ${slot} (A: ${BOOT_A_LEFT} left, B: ${BOOT_B_LEFT} left)"
# The attempt is stored before the kernel starts, so a boot that never comes back still counts.
saveenv

# Kernel, initramfs and device tree come from the chosen slot itself: an update replaces them
# together with the rest of the system. Debian's /vmlinuz and /initrd.img links point at them,
# flash-kernel's /boot/dtb at the board's device tree.
setenv bootargs "console=${console} root=PARTLABEL=${rootlabel} rootwait ro rauc.slot=${slot}"
load mmc ${mmcdev}:${slotpart} ${kernel_addr_r} /vmlinuz || reset
load mmc ${mmcdev}:${slotpart} ${ramdisk_addr_r} /initrd.img || reset
setenv initrd_size ${filesize}
load mmc ${mmcdev}:${slotpart} ${fdt_addr_r} /boot/dtb || reset
booti ${kernel_addr_r} ${ramdisk_addr_r}:${initrd_size} ${fdt_addr_r}
# booti returns only on failure: the attempt is already counted, try again.
reset
