// Files that must survive a power cut whole: written to a temporary file next to the target,
// fsynced, renamed over it, and the directory fsynced, so that a reader finds the old content or
// the new one, never a mix or nothing.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace anju::edge {

// "" when written, else what failed (naming the file and the system's reason). The file gets
// `mode` whatever an older temporary file had.
std::string write_file_atomic(const std::string& path, std::string_view data, mode_t mode);

}  // namespace anju::edge
