// Fuzz target: the event decoders — JSON (from the journal written before the binary form, and
// later from the city) and the binary form the inbox and the journal store.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "anju/edge/event.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = anju::edge::decode_event(text);
  if (r.event) {
    // Whatever decodes must encode and decode to the same event, in both forms.
    auto again = anju::edge::decode_event(anju::edge::encode(*r.event));
    if (!again.event || !(*again.event == *r.event)) __builtin_trap();
    // The binary form leaves `seq` out (the journal row's key holds it), so compare without it.
    auto bin = anju::edge::decode_binary(anju::edge::encode_binary(*r.event));
    if (!bin.event) __builtin_trap();
    bin.event->seq = r.event->seq;
    if (!(*bin.event == *r.event)) __builtin_trap();
  } else if (r.error.empty()) {
    __builtin_trap();  // a refusal always says why
  }
  auto b = anju::edge::decode_stored(text);
  if (b.event) {
    auto again = anju::edge::decode_binary(anju::edge::encode_binary(*b.event));
    if (!again.event) __builtin_trap();
    again.event->seq = b.event->seq;
    if (!(*again.event == *b.event)) __builtin_trap();
  } else if (b.error.empty()) {
    __builtin_trap();
  }
  return 0;
}
