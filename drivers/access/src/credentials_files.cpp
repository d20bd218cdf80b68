// Reading the site key and the credentials file from disk (see credentials.hpp).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "anju/drivers/credentials.hpp"

namespace anju::drivers::access {
namespace {

bool read_all(const std::string& path, std::string& out, std::string& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

}  // namespace

SiteKeyResult load_site_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return {std::nullopt, path + ": cannot stat: " + std::strerror(errno)};
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return {std::nullopt, path + ": mode " + mode +
                              " lets others read the site key; it must be readable by its owner "
                              "only (chmod 600)"};
  }
  std::string text, err;
  if (!read_all(path, text, err)) return {std::nullopt, err};
  auto r = parse_site_key(text);
  if (!r.key) r.error = path + ": " + r.error;
  return r;
}

CredentialsResult load_credentials(const std::string& path) {
  std::string text, err;
  if (!read_all(path, text, err)) return {std::nullopt, {err}};
  return parse_credentials(text, path);
}

}  // namespace anju::drivers::access
