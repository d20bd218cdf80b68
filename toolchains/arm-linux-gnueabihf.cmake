# 32-bit ARM gateways (Debian armhf, ARMv7 hard-float):
#   cmake -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake
# Needs crossbuild-essential-armhf; scripts/cross-build armhf does it all (docs/CROSS.md).
set(ANJU_CROSS_TRIPLET arm-linux-gnueabihf)
set(ANJU_CROSS_PROCESSOR armv7l)
set(ANJU_CROSS_QEMU qemu-arm)
# GCC notes on every std::map/std::vector instantiation that their parameter passing changed in
# GCC 7.1: nothing here is linked with code built by a GCC that old.
set(CMAKE_CXX_FLAGS_INIT -Wno-psabi)
include(${CMAKE_CURRENT_LIST_DIR}/linux-gnu-cross.cmake)
