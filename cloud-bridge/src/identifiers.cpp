// Identifier checks (see the header for the layouts and sources). Included by relative path so
// that fuzz builds, which do not build cloud-bridge, can compile it into their target.
#include "../include/anju/bridge/identifiers.hpp"

#include <algorithm>
#include <array>

namespace anju::bridge {
namespace {

// GB/T 2260 province-level codes (the first two digits of every division code).
constexpr std::array<int, 34> kProvinces = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34,
                                            35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52,
                                            53, 54, 61, 62, 63, 64, 65, 71, 81, 82};

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 40)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (s.size() > 40) out += "...";
  return out + "\"";
}

// "" when `s` is exactly `n` ASCII digits, else what is wrong.
std::string digits(std::string_view what, std::string_view s, std::size_t n) {
  if (s.empty()) return std::string(what) + ": empty, " + std::to_string(n) + " digits required";
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9')
      return std::string(what) + ": " + quoted(s) + " has a non-digit at position " +
             std::to_string(i + 1) + " (" + std::to_string(n) + " digits required)";
  if (s.size() != n)
    return std::string(what) + ": " + std::to_string(s.size()) + " digits, " + std::to_string(n) +
           " required";
  return "";
}

int two(std::string_view s) {
  return (s[0] - '0') * 10 + (s[1] - '0');
}

std::string check_province(std::string_view what, std::string_view code) {
  const int p = two(code);
  if (std::find(kProvinces.begin(), kProvinces.end(), p) == kProvinces.end())
    return std::string(what) + ": " + quoted(code) + " starts with " +
           std::string(code.substr(0, 2)) + ", which is not a GB/T 2260 province code";
  return "";
}

}  // namespace

std::string_view gb28181_type_class(std::string_view type) {
  if (type.size() != 3) return {};
  for (char c : type)
    if (c < '0' || c > '9') return {};
  const int t = (type[0] - '0') * 100 + (type[1] - '0') * 10 + (type[2] - '0');
  if (t >= 111 && t <= 130) return "front-end main device";
  if (t >= 131 && t <= 199) return "front-end peripheral";
  if (t >= 200 && t <= 299) return "platform device";
  if (t >= 300 && t <= 399) return "centre user";
  if (t >= 400 && t <= 499) return "terminal user";
  if (t >= 500 && t <= 999) return "extension";
  return {};
}

bool parse_gb28181_code(std::string_view code, Gb28181Code* out) {
  if (!check_gb28181_code(code).empty()) return false;
  if (out)
    *out = {code.substr(0, 8), code.substr(8, 2), code.substr(10, 3), code.substr(13, 1),
            code.substr(14, 6)};
  return true;
}

std::string check_gb28181_code(std::string_view code) {
  const std::string_view what = "GB/T 28181 device code";
  if (auto e = digits(what, code, 20); !e.empty()) return e;
  if (auto e = check_province(std::string(what) + " (centre code, digits 1-8)", code); !e.empty())
    return e;
  const std::string_view type = code.substr(10, 3);
  if (gb28181_type_class(type).empty())
    return std::string(what) + ": type code (digits 11-13) " + std::string(type) +
           " is not an assigned GB/T 28181 type (111-999)";
  return "";
}

std::string check_division_code(std::string_view code) {
  const std::string_view what = "division code";
  if (auto e = digits(what, code, 12); !e.empty()) return e;
  return check_province(what, code);
}

std::string check_grid_code(std::string_view grid_code, std::string_view division_code) {
  const std::string_view what = "grid code";
  if (auto e = digits(what, grid_code, 20); !e.empty()) return e;
  if (auto e = check_province(what, grid_code); !e.empty()) return e;
  if (division_code.empty()) return "";
  if (auto e = check_division_code(division_code); !e.empty()) return e;
  if (grid_code.substr(0, 12) != division_code)
    return std::string(what) + ": " + quoted(grid_code) + " starts with " +
           std::string(grid_code.substr(0, 12)) + ", but the site's division code is " +
           std::string(division_code) + " (the first 12 digits must be equal)";
  return "";
}

}  // namespace anju::bridge
