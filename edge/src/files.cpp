#include "anju/edge/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace anju::edge {

std::string write_file_atomic(const std::string& path, std::string_view data, mode_t mode) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return "cannot create " + tmp + ": " + std::strerror(errno);
  std::string why;
  if (::fchmod(fd, mode) != 0) why = "cannot set the mode of " + tmp + ": " + std::strerror(errno);
  for (std::size_t done = 0; why.empty() && done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      why = "cannot write " + tmp + ": " + std::strerror(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (why.empty() && ::fsync(fd) != 0) why = "cannot fsync " + tmp + ": " + std::strerror(errno);
  if (::close(fd) != 0 && why.empty()) why = "cannot close " + tmp + ": " + std::strerror(errno);
  if (why.empty() && ::rename(tmp.c_str(), path.c_str()) != 0)
    why = "cannot rename " + tmp + " to " + path + ": " + std::strerror(errno);
  if (!why.empty()) {
    ::unlink(tmp.c_str());
    return why;
  }
  // The rename itself survives a power cut once the directory is synced.
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace anju::edge
