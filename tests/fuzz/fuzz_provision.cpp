// libFuzzer target: set_config_values, the in-place config editor of `anju provision`, and the
// other readers of outside text it uses (check_config_value, config_value, find_device_entries).
// Input: a first line of up to four tab-separated PATH=VALUE edits, then the YAML document.
// Properties: nothing throws or crashes; a failure always says why; a success re-reads with the
// values set, passes parse_config when it changed anything, and applying the same edits to it
// again changes no byte. Seeds: tests/fuzz/corpus/provision/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anju/bridge/identifiers.hpp"
#include "anju/firmware/config.hpp"
#include "anju/firmware/provision.hpp"

namespace fw = anju::firmware;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 32 * 1024) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto nl = in.find('\n');
  const std::string_view head = in.substr(0, nl == std::string_view::npos ? in.size() : nl);
  const std::string yaml(nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1));

  std::vector<std::pair<std::string, std::string>> kv;
  for (std::size_t b = 0; b <= head.size() && kv.size() < 4;) {
    auto e = head.find('\t', b);
    if (e == std::string_view::npos) e = head.size();
    const std::string_view item = head.substr(b, e - b);
    const auto eq = item.find('=');
    kv.emplace_back(std::string(item.substr(0, eq)), eq == std::string_view::npos
                                                         ? std::string()
                                                         : std::string(item.substr(eq + 1)));
    b = e + 1;
  }

  for (const auto& [path, value] : kv) {
    // The rules check_config_value applies, called here too: this object then pulls them from
    // anju_bridge_parsers before anju_firmware (which uses them) comes on the link line.
    const std::string rule = fw::check_config_value(path, value);
    if (path == "site.grid_code" && rule.empty() != anju::bridge::check_grid_code(value).empty())
      std::abort();
    (void)anju::bridge::check_gb28181_code(value);
    (void)anju::bridge::check_division_code(value);
  }
  if (!kv.empty()) {
    (void)fw::config_value(yaml, kv.front().first);
    (void)fw::find_device_entries(yaml, kv.front().second);
  }
  (void)fw::config_path_key(head);

  std::string error;
  const std::string out = fw::set_config_values(yaml, kv, &error, "fuzz.yaml");
  if (!error.empty()) {
    if (!out.empty()) std::abort();
    return 0;
  }
  // The last value given for a path is the one it holds.
  for (std::size_t i = 0; i < kv.size(); ++i) {
    bool later = false;
    for (std::size_t j = i + 1; j < kv.size(); ++j) later = later || kv[j].first == kv[i].first;
    if (!later && fw::config_value(out, kv[i].first) != kv[i].second) std::abort();
  }
  if (out != yaml && !fw::parse_config(out, "fuzz.yaml").config) std::abort();
  std::string again_error;
  const std::string again = fw::set_config_values(out, kv, &again_error, "fuzz.yaml");
  if (!again_error.empty() || again != out) std::abort();
  return 0;
}
