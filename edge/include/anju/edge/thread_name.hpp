// Names the calling thread (at most 15 characters, as Linux keeps them), so that `top -H`,
// `ps -L`, perf and gdb show which of anjud's threads is which instead of "anjud" for all.
#pragma once

#include <pthread.h>

#include <string>

namespace anju::edge {

inline void name_this_thread(const std::string& name) {
  ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace anju::edge
