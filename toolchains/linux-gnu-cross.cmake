# Shared part of the toolchain files for Debian's cross compilers (crossbuild-essential-<arch>).
# Included by aarch64-linux-gnu.cmake and arm-linux-gnueabihf.cmake after they set
# ANJU_CROSS_TRIPLET, ANJU_CROSS_PROCESSOR and ANJU_CROSS_QEMU. See docs/CROSS.md.
#
# Where the target's libraries come from: ANJU_CROSS_SYSROOT (a -D cache variable or the
# environment variable of that name).
#  - Set (what scripts/cross-build does): a directory into which the target's Debian packages
#    (libssl-dev:arm64, ...) were unpacked with dpkg-deb -x. Nothing is installed on the host.
#  - Not set: the target's -dev packages are installed on this machine through Debian multiarch
#    (dpkg --add-architecture; apt-get install libssl-dev:arm64 ...), in /usr/lib/<triplet>.
# pkg-config reads the target's .pc files only, never the host's.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR ${ANJU_CROSS_PROCESSOR})
set(CMAKE_LIBRARY_ARCHITECTURE ${ANJU_CROSS_TRIPLET})
set(CMAKE_C_COMPILER ${ANJU_CROSS_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${ANJU_CROSS_TRIPLET}-g++)

if(NOT DEFINED ANJU_CROSS_SYSROOT AND DEFINED ENV{ANJU_CROSS_SYSROOT})
  set(ANJU_CROSS_SYSROOT "$ENV{ANJU_CROSS_SYSROOT}")
endif()
# try_compile() projects read this file again: hand them the same sysroot.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES ANJU_CROSS_SYSROOT)

if(ANJU_CROSS_SYSROOT)
  if(NOT IS_DIRECTORY "${ANJU_CROSS_SYSROOT}/usr/lib/${ANJU_CROSS_TRIPLET}")
    message(FATAL_ERROR "ANJU_CROSS_SYSROOT=${ANJU_CROSS_SYSROOT} holds no usr/lib/${ANJU_CROSS_TRIPLET}: "
                        "run scripts/cross-build, which makes it")
  endif()
  # The compiler keeps its own libc and libstdc++ (/usr/<triplet>); everything else comes from
  # the sysroot.
  set(CMAKE_SYSROOT "${ANJU_CROSS_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH "${ANJU_CROSS_SYSROOT}")
  set(_anju_root "${ANJU_CROSS_SYSROOT}")
  # Run target programs (Catch2's test discovery, ctest) under qemu-user with the sysroot's
  # dynamic loader and libraries.
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ANJU_CROSS_QEMU} -L "${ANJU_CROSS_SYSROOT}")
  set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
  set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
  set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
else()
  # Multiarch: libraries in /usr/lib/<triplet> (found through CMAKE_LIBRARY_ARCHITECTURE),
  # headers in /usr/include. The libc and libstdc++ of the cross compiler live in /usr/<triplet>.
  set(_anju_root "")
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ANJU_CROSS_QEMU} -L /usr/${ANJU_CROSS_TRIPLET})
endif()

set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_LIBDIR}
    "${_anju_root}/usr/lib/${ANJU_CROSS_TRIPLET}/pkgconfig:${_anju_root}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${_anju_root}")
unset(_anju_root)
