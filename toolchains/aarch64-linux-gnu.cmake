# 64-bit ARM gateways (Debian arm64): cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
# Needs crossbuild-essential-arm64; scripts/cross-build aarch64 does it all (docs/CROSS.md).
set(ANJU_CROSS_TRIPLET aarch64-linux-gnu)
set(ANJU_CROSS_PROCESSOR aarch64)
set(ANJU_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
