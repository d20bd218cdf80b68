// Fuzz target: the event decoder (JSON from the inbox, the journal and, later, the city).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/edge/event.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = anju::edge::decode_event(text);
  if (r.event) {
    // Whatever decodes must encode and decode to the same event.
    auto again = anju::edge::decode_event(anju::edge::encode(*r.event));
    if (!again.event || !(*again.event == *r.event)) __builtin_trap();
  } else if (r.error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  return 0;
}
