// libFuzzer target: arbitrary bytes as a config file. parse_config must never throw or crash, must
// return either a config or at least one error (never both), and every error must have a message.
// Seeds: tests/fuzz/corpus/config/.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "anju/firmware/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto r = anju::firmware::parse_config(text, "fuzz.yaml");
  if (r.config.has_value() == !r.errors.empty()) std::abort();
  for (const auto& e : r.errors) {
    if (e.message.empty() || e.line < 0 || e.column < 0 || (e.line == 0 && e.column != 0))
      std::abort();
    (void)e.to_string();
  }
  if (r.config) {
    const auto& c = *r.config;
    if (c.site.id.empty() || c.local_broker.client_id.empty() || c.uplink.broker.client_id.empty())
      std::abort();
  }
  return 0;
}
