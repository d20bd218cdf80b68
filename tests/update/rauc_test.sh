#!/usr/bin/env bash
# Signed updates with RAUC on loopback slots (docs/UPDATES.md, "What the test proves").
#
# Makes a development CA and a second, untrusted CA with the SAME names
# (firmware/update/make-dev-ca), two ext4 slot images attached to loop devices, a U-Boot
# environment in a file and the gateway's own firmware/update/system.conf pointed at them. It then runs RAUC as on the gateway: `rauc
# service` (on a private D-Bus bus; no systemd needed) with the booted slot set to A, and the real
# `rauc install` client. RAUC's real U-Boot backend reads and writes the environment with
# libubootenv's fw_printenv/fw_setenv. Checks, each on the message a user would see:
#   refused, nothing written (both slots and the U-Boot environment byte for byte as before):
#     (b) a bundle signed by the untrusted CA
#     (c) a correctly signed bundle with one bit of its payload flipped
#     (d) an unsigned bundle (squashfs of manifest + image), and a truncated one
#     (e) a correctly signed bundle for another device (compatible)
#     (g) a correctly signed bundle installed by an unprivileged user (the gateway's D-Bus policy,
#         firmware/update/dbus/de.pengutronix.rauc.conf), who may still read `rauc status`
#   (a) a correctly signed bundle installs into the inactive slot B: the slot holds the bundle's
#       image byte for byte (and its /etc/anju-release), A is untouched, BOOT_ORDER="B A" with 3
#       attempts for B, and `rauc status` says B is activated
#   (f) boot counting and rollback after "rebooting" into B (U-Boot's decrement done by hand):
#       firmware/update/update-mark-good, with a stand-in for `anju check`, marks B good when
#       the local checks pass (attempts back to 3); a second update (2.1.0 into A) whose anjud
#       fails is marked bad and BOOT_ORDER falls back to "B"; a failure on the confirmed B marks
#       nothing.
# Needs root (loop devices) and, from Debian: rauc squashfs-tools e2fsprogs dbus libglib2.0-bin
# libubootenv-tool openssl python3. Every wait has a deadline; loop devices, mounts and the
# processes it started are cleaned up on any exit.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PATH="$PATH:/usr/sbin:/sbin"
passed=0

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() {
  passed=$((passed + 1))
  echo "ok $passed - $*"
}

[ "$(id -u)" -eq 0 ] || fail "must run as root (it attaches loop devices and installs into them)"
for tool in rauc mksquashfs mkfs.ext4 debugfs losetup dbus-daemon gdbus fw_printenv fw_setenv \
  openssl python3 timeout setpriv mkfifo; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-deps" \
    "(rauc squashfs-tools e2fsprogs dbus libglib2.0-bin libubootenv-tool openssl python3)"
done

T="$(mktemp -d /tmp/anju-rauc-test.XXXXXX)"
service_pid="" bus_pid=""
LOOP_A="" LOOP_B=""

stop_gateway() {
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
    service_pid=""
  fi
  if [ -n "$bus_pid" ]; then
    kill "$bus_pid" 2>/dev/null || true
    wait "$bus_pid" 2>/dev/null || true
    bus_pid=""
  fi
}

cleanup() {
  local rc=$?
  set +e
  stop_gateway
  # Whatever RAUC may have left mounted under this test's directory (deepest first).
  awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m"
  done
  # Only the loop devices backed by this test's files: slots and bundles.
  local f dev
  for f in "$T"/*.img "$T"/bundles/*; do
    [ -e "$f" ] || continue
    for dev in $(losetup -n -O NAME -j "$f"); do losetup -d "$dev"; done
  done
  if [ "$rc" -ne 0 ] && [ -s "$T/service.log" ]; then
    echo "--- rauc service log (last 40 lines)" >&2
    tail -n 40 "$T/service.log" >&2
  fi
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Keys: the trusted dev CA and an attacker's CA that copies its names -------------------------
"$repo/firmware/update/make-dev-ca" --name test "$T/trusted" >/dev/null
"$repo/firmware/update/make-dev-ca" --name test "$T/untrusted" >/dev/null
[ "$(openssl x509 -in "$T/trusted/ca.cert.pem" -noout -subject)" = \
  "$(openssl x509 -in "$T/untrusted/ca.cert.pem" -noout -subject)" ] ||
  fail "the untrusted CA should have the same subject as the trusted one"

# --- The gateway: two slots, a U-Boot environment, system.conf ------------------------------------
make_slot() { # NAME VERSION
  mkdir -p "$T/slot-$1/etc"
  echo "ANJU_VERSION=$2" >"$T/slot-$1/etc/anju-release"
  mkfs.ext4 -q -F -L "rootfs-$1" -d "$T/slot-$1" "$T/$1.img" 32M >/dev/null
}
make_slot a 1.0.0
make_slot b 0.9.0
LOOP_A="$(losetup -f --show "$T/a.img")"
LOOP_B="$(losetup -f --show "$T/b.img")"

# U-Boot's environment in a file, with its CRC, as fw_setenv writes it to the board's eMMC.
truncate -s 16K "$T/uboot.env"
echo "$T/uboot.env 0x0 0x4000" >"$T/fw_env.config"
printf 'BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n' >"$T/uboot.default"
fw_setenv -c "$T/fw_env.config" -f "$T/uboot.default" 2>/dev/null
mkdir "$T/bin"
for tool in fw_printenv fw_setenv; do
  printf '#!/bin/sh\nexec %s -c %s "$@"\n' "$(command -v "$tool")" "$T/fw_env.config" \
    >"$T/bin/$tool"
  chmod +x "$T/bin/$tool"
done
uboot() { fw_printenv -c "$T/fw_env.config" -n "$1"; }
[ "$(uboot BOOT_ORDER)" = "A B" ] || fail "could not write the U-Boot environment"

# firmware/update/system.conf with only its "test:" lines changed; each must change exactly once.
cp "$repo/firmware/update/system.conf" "$T/system.conf"
replace() { # PATTERN REPLACEMENT
  [ "$(grep -c -- "^$1" "$T/system.conf")" -eq 1 ] || fail "system.conf: expected one line '$1'"
  sed -i "s|^$1.*|$2|" "$T/system.conf"
}
# /run/rauc exists (rauc.service's RuntimeDirectory); RAUC makes the mount prefix in it.
mkdir -p "$T/data" "$T/run/rauc" "$T/bundles"
replace "data-directory=" "data-directory=$T/data"
replace "mountprefix=" "mountprefix=$T/run/rauc/mnt"
replace "bundle-formats=-plain" "bundle-formats=plain"
replace "path=/etc/rauc/keyring.pem" "path=$T/trusted/keyring.pem"
replace "device=/dev/disk/by-partlabel/rootfs-a" "device=$LOOP_A"
replace "device=/dev/disk/by-partlabel/rootfs-b" "device=$LOOP_B"

# A private D-Bus bus for rauc service and its clients (RAUC uses the session bus when
# DBUS_STARTER_BUS_TYPE=session), with the system bus's default-deny policy and the gateway's
# RAUC policy (firmware/update/dbus/de.pengutronix.rauc.conf). Its socket is reachable by an
# unprivileged user, for check (g).
chmod 0711 "$T"
mkdir -m 0755 "$T/bus"
cat >"$T/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$T/bus/socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$repo/firmware/update/dbus/de.pengutronix.rauc.conf</include>
</busconfig>
EOF

boot_gateway() { # BOOTNAME: what the kernel command line's rauc.slot= would say
  local address="" done_pid="" rc=0
  mkfifo "$T/bus.address"
  dbus-daemon --config-file="$T/bus.conf" --nofork --print-address=3 3>"$T/bus.address" \
    >>"$T/bus.log" 2>&1 &
  bus_pid=$!
  read -r -t 30 address <"$T/bus.address" || true
  rm -f "$T/bus.address"
  [ -n "$address" ] || fail "dbus-daemon did not start: $(cat "$T/bus.log")"
  export DBUS_SESSION_BUS_ADDRESS="$address" DBUS_STARTER_BUS_TYPE=session
  echo "--- boot from slot $1" >>"$T/service.log"
  PATH="$T/bin:$PATH" rauc service --conf="$T/system.conf" --override-boot-slot="$1" \
    >>"$T/service.log" 2>&1 &
  service_pid=$!
  gdbus wait --session --timeout 30 de.pengutronix.rauc &
  local waiter=$!
  wait -n -p done_pid "$waiter" "$service_pid" || rc=$?
  if [ "$done_pid" = "$service_pid" ]; then
    service_pid=""
    kill "$waiter" 2>/dev/null || true
    fail "rauc service exited ($rc) before taking its D-Bus name"
  fi
  [ "$rc" -eq 0 ] || fail "rauc service did not take its D-Bus name within 30 s"
}

digest() { sha256sum "$LOOP_A" "$LOOP_B" "$T/uboot.env" | cut -d' ' -f1 | tr '\n' ' '; }
slot_file() { debugfs -R "cat $2" "$1" 2>/dev/null; }

# --- Bundles ------------------------------------------------------------------------------------
mkdir -p "$T/rootfs/etc"
echo "ANJU_VERSION=2.0.0" >"$T/rootfs/etc/anju-release"
# Incompressible content, so that the bundle's payload is not a few kB of compressed zeros.
head -c 1048576 /dev/urandom >"$T/rootfs/payload.bin"
bundle() { # NAME CA [make-update-bundle options]
  local name="$1" ca="$2"
  shift 2
  "$repo/scripts/make-update-bundle" --cert "$T/$ca/signing.cert.pem" \
    --key "$T/$ca/signing.key.pem" --format plain --size 16M "$@" "$T/rootfs" \
    "$T/bundles/$name.raucb" >/dev/null
}
bundle good trusted --version 2.0.0 --keyring "$T/trusted/keyring.pem"
echo "ANJU_VERSION=2.1.0" >"$T/rootfs/etc/anju-release"
bundle next trusted --version 2.1.0 --keyring "$T/trusted/keyring.pem"
echo "ANJU_VERSION=2.0.0" >"$T/rootfs/etc/anju-release"
bundle untrusted untrusted --version 2.0.0
bundle other-device trusted --version 2.0.0 --compatible anju-camera-box
# A plain bundle is squashfs, then the CMS signature, then the signature's size (64-bit BE).
size="$(stat -c %s "$T/bundles/good.raucb")"
sig="$(tail -c 8 "$T/bundles/good.raucb" | od -An -tu8 --endian=big | tr -d ' ')"
payload=$((size - 8 - sig))
[ "$payload" -gt 1048576 ] || fail "unexpected bundle layout: payload of $payload bytes"
# Tampered: one bit flipped in the middle of the payload (inside the image).
cp "$T/bundles/good.raucb" "$T/bundles/tampered.raucb"
python3 - "$T/bundles/tampered.raucb" "$((payload / 2))" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x01]))
EOF
cmp -s "$T/bundles/good.raucb" "$T/bundles/tampered.raucb" && fail "tampering did not change the bundle"
# Unsigned: the same manifest and image packed as squashfs, no signature.
rauc --conf="$T/system.conf" extract "$T/bundles/good.raucb" "$T/content" >/dev/null 2>&1 ||
  fail "rauc extract of the good bundle failed"
mksquashfs "$T/content" "$T/bundles/unsigned.raucb" -quiet -all-root -noappend >/dev/null
# Truncated: the first half of the good bundle.
head -c $((size / 2)) "$T/bundles/good.raucb" >"$T/bundles/truncated.raucb"

# --- The gateway runs from slot A ---------------------------------------------------------------
boot_gateway A
before="$(digest)"

expect_refused() { # CHECK BUNDLE MESSAGE
  local out rc=0
  out="$(timeout 120 rauc install "$T/bundles/$2.raucb" 2>&1)" || rc=$?
  [ "$rc" -ne 0 ] || fail "$1: the $2 bundle was installed; it must be refused. Output: $out"
  [ "$rc" -ne 124 ] || fail "$1: rauc install did not finish within 120 s"
  grep -qF -- "$3" <<<"$out" || fail "$1: expected the message '$3', got: $out"
  grep -qF -- "Installing \`$T/bundles/$2.raucb\` failed" <<<"$out" ||
    fail "$1: rauc install did not say that installing failed: $out"
  [ "$(digest)" = "$before" ] || fail "$1: a slot or the U-Boot environment changed"
  kill -0 "$service_pid" 2>/dev/null || fail "$1: rauc service died"
  ok "$1: $(grep -m1 'LastError:' <<<"$out" | sed 's/^LastError: //')"
}
expect_refused "(b) signed by an untrusted CA with the trusted CA's names is refused" untrusted \
  "signature verification failed: Verify error: unable to get local issuer certificate"
expect_refused "(c) a signed bundle with one payload bit flipped is refused" tampered \
  "signature verification failed: error:1700009E:CMS routines::verification failure"
expect_refused "(d) an unsigned bundle is refused" unsigned \
  "Invalid bundle format: Signature size is 0"
expect_refused "(d) a truncated bundle is refused" truncated \
  "Invalid bundle format: Signature size"
expect_refused "(e) a bundle for another device is refused" other-device \
  "Compatible mismatch: Expected 'anju-gateway' but bundle manifest has 'anju-camera-box'"

# (g) Only root may install: an unprivileged user is stopped by the D-Bus policy.
rc=0
out="$(timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups -- \
  rauc install "$T/bundles/good.raucb" 2>&1)" || rc=$?
[ "$rc" -ne 0 ] || fail "(g) an unprivileged user installed a bundle: $out"
grep -qF "org.freedesktop.DBus.Error.AccessDenied" <<<"$out" ||
  fail "(g) expected a D-Bus AccessDenied error, got: $out"
denied="$(grep -m1 -o 'member="[A-Za-z]*"' <<<"$out" || true)"
[ "$(digest)" = "$before" ] || fail "(g) a slot or the U-Boot environment changed"
out="$(timeout 60 setpriv --reuid=65534 --regid=65534 --clear-groups -- rauc status 2>&1)" ||
  fail "(g) an unprivileged user cannot read rauc status: $out"
ok "(g) an unprivileged user may read rauc status but not install: org.freedesktop.DBus.Error.AccessDenied ($denied)"

# (a) The good bundle.
out="$(timeout 120 rauc install "$T/bundles/good.raucb" 2>&1)" || fail "(a) rauc install failed: $out"
grep -qF -- "Installing \`$T/bundles/good.raucb\` succeeded" <<<"$out" ||
  fail "(a) rauc install did not report success: $out"
image="$T/content/rootfs.ext4"
cmp -s -n "$(stat -c %s "$image")" "$image" "$LOOP_B" ||
  fail "(a) slot B does not hold the bundle's image"
[ "$(slot_file "$LOOP_B" /etc/anju-release)" = "ANJU_VERSION=2.0.0" ] ||
  fail "(a) slot B's /etc/anju-release is '$(slot_file "$LOOP_B" /etc/anju-release)'"
[ "$(slot_file "$LOOP_A" /etc/anju-release)" = "ANJU_VERSION=1.0.0" ] ||
  fail "(a) the booted slot A changed"
[ "$(digest | cut -d' ' -f1)" = "$(cut -d' ' -f1 <<<"$before")" ] || fail "(a) slot A changed"
[ "$(uboot BOOT_ORDER)" = "B A" ] || fail "(a) BOOT_ORDER is '$(uboot BOOT_ORDER)', not 'B A'"
[ "$(uboot BOOT_B_LEFT)" = "3" ] || fail "(a) BOOT_B_LEFT is '$(uboot BOOT_B_LEFT)', not 3"
status="$(timeout 60 rauc status 2>&1)" || fail "(a) rauc status failed: $status"
grep -q "Activated: rootfs.1 (B)" <<<"$status" || fail "(a) rauc status: $status"
grep -q "Booted from: rootfs.0 (A)" <<<"$status" || fail "(a) rauc status: $status"
ok "(a) a bundle signed by the trusted CA is in slot B (image byte for byte, ANJU_VERSION=2.0.0), A untouched, BOOT_ORDER=\"B A\", BOOT_B_LEFT=3"

# (f) Boot counting and rollback. A stand-in for `anju check` prints what $T/check.txt holds.
mkdir "$T/stub"
cat >"$T/stub/anju" <<EOF
#!/bin/sh
cat "$T/check.txt"
! grep -q '^FAIL' "$T/check.txt"
EOF
chmod +x "$T/stub/anju"
healthy() {
  printf '%s\n' "ok    config        /etc/anju/anju.yaml is valid (site test)" \
    "ok    disk          1.2 GiB free" "ok    local_broker  connected" \
    "ok    anjud         running (pid 42), local bus connected" \
    "FAIL  uplink        the city broker does not answer" >"$T/check.txt"
}
anjud_down() {
  healthy
  sed -i 's/^ok    anjud .*/FAIL  anjud         anjud is not running/' "$T/check.txt"
}
mark_good() { # EXPECTED_EXIT
  local rc=0
  ANJU="$T/stub/anju" timeout 60 "$repo/firmware/update/update-mark-good" --state "$T/data/confirmed" \
    --tries 1 --interval 0 --no-reboot >"$T/mark.log" 2>&1 || rc=$?
  [ "$rc" -eq "$1" ] || fail "update-mark-good exited $rc, not $1: $(cat "$T/mark.log")"
  grep '^update-mark-good: slot' "$T/mark.log" | tail -n 1 | sed 's/^update-mark-good: //' || true
}
reboot_into() { # BOOTNAME: what U-Boot's boot.cmd does (take one attempt), then boot it
  stop_gateway
  fw_setenv -c "$T/fw_env.config" "BOOT_$1_LEFT" "$(($(uboot "BOOT_$1_LEFT") - 1))"
  boot_gateway "$1"
}

reboot_into B
[ "$(uboot BOOT_B_LEFT)" = "2" ] || fail "(f) the reboot did not take an attempt from B"
healthy
msg="$(mark_good 0)"
[ "$(uboot BOOT_B_LEFT)" = "3" ] || fail "(f) mark-good left BOOT_B_LEFT=$(uboot BOOT_B_LEFT)"
[ "$(uboot BOOT_ORDER)" = "B A" ] || fail "(f) BOOT_ORDER is '$(uboot BOOT_ORDER)' after mark-good"
grep -q "^B " "$T/data/confirmed" || fail "(f) the installation of B was not remembered as confirmed"
ok "(f) booted B, anju check passes (a failing uplink does not count): $msg; BOOT_B_LEFT=3"

out="$(timeout 120 rauc install "$T/bundles/next.raucb" 2>&1)" || fail "(f) installing 2.1.0 failed: $out"
[ "$(slot_file "$LOOP_A" /etc/anju-release)" = "ANJU_VERSION=2.1.0" ] || fail "(f) 2.1.0 is not in A"
[ "$(uboot BOOT_ORDER)" = "A B" ] || fail "(f) BOOT_ORDER is '$(uboot BOOT_ORDER)' after installing 2.1.0"
reboot_into A
anjud_down
msg="$(mark_good 2)"
[ "$(uboot BOOT_ORDER)" = "B" ] || fail "(f) after mark-bad BOOT_ORDER is '$(uboot BOOT_ORDER)', not 'B'"
[ "$(uboot BOOT_A_LEFT)" = "0" ] || fail "(f) after mark-bad BOOT_A_LEFT is $(uboot BOOT_A_LEFT)"
ok "(f) 2.1.0 installed into A fails its first boot (anjud FAIL): $msg; BOOT_ORDER=\"B\", BOOT_A_LEFT=0"

reboot_into B
anjud_down
msg="$(mark_good 1)"
{ [ "$(uboot BOOT_ORDER)" = "B" ] && [ "$(uboot BOOT_B_LEFT)" = "2" ]; } ||
  fail "(f) a failing check on the confirmed slot B changed the boot state"
grep -q "confirmed on an earlier boot: not rolling back" "$T/mark.log" ||
  fail "(f) update-mark-good: $(cat "$T/mark.log")"
[ "$(slot_file "$LOOP_B" /etc/anju-release)" = "ANJU_VERSION=2.0.0" ] || fail "(f) B changed"
ok "(f) back on the confirmed 2.0.0 in B, a failing check marks nothing (no rollback from a confirmed slot)"

echo "$passed passed, 0 failed"
