// libFuzzer target: the city contract's pure code — the JSON Schema subset validator and the
// identifier checks (cloud-bridge/, library anju_bridge_parsers). The first byte picks what is
// fuzzed:
//   0: a payload (the rest) validated against every contract schema (docs/contract/schemas),
//      leniently and strictly — untrusted instances against the trusted schemas;
//   1: a schema document and an instance, separated by a NUL byte: add() must refuse bad schemas
//      with a reason, and validate() must not crash, loop or throw ($ref loops included).
//      Schemas with "pattern" are skipped: patterns come from our own documents, and std::regex
//      backtracks exponentially on hostile ones;
//   2: identifier checks: GB/T 28181 code, division code, grid code (+ a division prefix after a
//      NUL byte). Accepted values have the documented shape; refusals carry a printable reason.
// Seeds: tests/fuzz/corpus/schema/.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "anju/bridge/identifiers.hpp"
#include "anju/bridge/json_schema.hpp"

using anju::bridge::schema::Options;
using anju::bridge::schema::SchemaSet;
using nlohmann::json;

namespace {

const SchemaSet& contract() {
  static const SchemaSet set = [] {
    SchemaSet s;
    const auto dir = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path() /
                     "docs" / "contract" / "schemas";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".json") continue;
      std::ifstream in(e.path());
      std::stringstream ss;
      ss << in.rdbuf();
      auto doc = json::parse(ss.str(), nullptr, false);
      if (!doc.is_discarded()) (void)s.add(e.path().filename().string(), doc);
    }
    return s;
  }();
  return set;
}

void printable(const std::string& message) {
  if (message.empty()) __builtin_trap();
  for (unsigned char c : message)
    if (c < 0x20 || c == 0x7f) __builtin_trap();
}

void identifiers(std::string_view in) {
  using namespace anju::bridge;
  const auto nul = in.find('\0');
  const std::string_view a = in.substr(0, nul);
  const std::string_view b =
      nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);

  const std::string g = check_gb28181_code(a);
  Gb28181Code code;
  if (g.empty()) {
    if (a.size() != 20 || !parse_gb28181_code(a, &code)) __builtin_trap();
    const std::string joined = std::string(code.centre) + std::string(code.industry) +
                               std::string(code.type) + std::string(code.network) +
                               std::string(code.serial);
    if (joined != a || gb28181_type_class(code.type).empty()) __builtin_trap();
  } else {
    printable(g);
    if (parse_gb28181_code(a, &code)) __builtin_trap();
  }
  const std::string d = check_division_code(a);
  if (d.empty()) {
    if (a.size() != 12) __builtin_trap();
  } else {
    printable(d);
  }
  const std::string grid = check_grid_code(a, b);
  if (grid.empty()) {
    if (a.size() != 20) __builtin_trap();
    if (!b.empty() && (b.size() != 12 || a.substr(0, 12) != b)) __builtin_trap();
  } else {
    printable(grid);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      const auto j = json::parse(all, nullptr, false);
      if (j.is_discarded()) return 0;
      const auto& set = contract();
      Options strict;
      strict.strict = true;
      for (const char* name : {"envelope.json", "alert.json", "event.json", "device_status.json",
                               "gateway_status.json", "summary.json", "command_request.json",
                               "command_response.json"}) {
        const auto lenient = set.validate(name, j);
        const auto issues = set.validate(name, j, strict);
        if (lenient.size() > Options{}.max_issues || issues.size() > strict.max_issues)
          __builtin_trap();
        for (const auto& i : issues)
          if (i.message.empty()) __builtin_trap();
      }
      break;
    }
    case 1: {
      const auto nul = all.find('\0');
      if (nul == std::string_view::npos) return 0;
      const auto schema = json::parse(all.substr(0, nul), nullptr, false);
      const auto instance = json::parse(all.substr(nul + 1), nullptr, false);
      if (schema.is_discarded() || instance.is_discarded()) return 0;
      if (all.substr(0, nul).find("pattern") != std::string_view::npos) return 0;
      SchemaSet set;
      const std::string err = set.add("f.json", schema);
      if (!err.empty()) {
        if (set.has("f.json")) __builtin_trap();
        return 0;
      }
      (void)set.unresolved_refs();
      Options o;
      o.max_issues = 5;
      if (set.validate("f.json", instance, o).size() > 5) __builtin_trap();
      o.strict = true;
      if (set.validate("f.json", instance, o).size() > 5) __builtin_trap();
      break;
    }
    default:
      identifiers(all);
  }
  return 0;
}
