// The identifiers the city platform keys everything on, checked at provisioning (pure functions).
//
// GB/T 28181 device/user code (GB/T 28181-2016 Annex D, coding rule A): 20 decimal digits =
//   centre code (8: the monitoring centre's GB/T 2260 division code, unused places 0)
//   + industry code (2) + type code (3) + network id (1) + serial (6).
//   The 2011 edition's rule A reads the last 7 digits as one serial; the 2016 edition splits them
//   into network id + serial. Both give the same 20-digit shape, which is what is checked.
//   (Sources: GB/T 28181-2016 Annex D as reproduced in wvp-gb28181-project doc/_content/theory/
//   code.md, "编码规则 A 由中心编码(8位)、行业编码(2位)、类型编码(3位)和序号(7位)"; and
//   h5nvr.com "GB28181国标ID命名规范": "中心编码(8位)、行业编码(2位)、类型编码(3位)、网络标识(1位)
//   和序号(6位)共20位".)
// Division code (GB/T 2260 county + township + residents' committee): 12 digits = 6 + 3 + 3.
// Grid code (CJ/T 349, as provisioned by the city): 20 digits whose first 12 are the division code
//   of the community the grid cell lies in, followed by an 8-digit cell number. The site's grid
//   code must therefore start with the site's division code.
// Each check returns "" when the value is valid, otherwise a message that names the field and what
// is wrong with it (meant for an installer: "division code: 11 digits, 12 required").
// Thread: none (pure).
#pragma once

#include <string>
#include <string_view>

namespace anju::bridge {

struct Gb28181Code {
  std::string_view centre;    // 8 digits: GB/T 2260 division of the monitoring centre
  std::string_view industry;  // 2 digits
  std::string_view type;      // 3 digits, e.g. 131 camera, 132 IP camera, 134 alarm input
  std::string_view network;   // 1 digit
  std::string_view serial;    // 6 digits
};

// "" when valid. `code` must outlive a parsed Gb28181Code (the fields point into it).
std::string check_gb28181_code(std::string_view code);
bool parse_gb28181_code(std::string_view code, Gb28181Code* out);

std::string check_division_code(std::string_view code);
// The grid code on its own, then (when `division_code` is not empty) its prefix against it.
std::string check_grid_code(std::string_view grid_code, std::string_view division_code = {});

// A readable name of a GB/T 28181 type code's range ("front-end device", ...), "" if unassigned.
std::string_view gb28181_type_class(std::string_view type);

}  // namespace anju::bridge
