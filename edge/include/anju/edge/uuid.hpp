// UUIDv7 (RFC 9562): 48-bit ms timestamp, then a counter and randomness, so ids are unique across
// restarts and gateways and sort by creation time. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace anju::edge {

std::string uuid_v7(std::int64_t unix_ms);
// A name-based id (UUIDv8 layout over SHA-256 of the name): the same name gives the same id,
// used where a message recomputed after a restart must keep its id (summaries).
std::string uuid_from_name(std::string_view name);
bool is_uuid(std::string_view s);

}  // namespace anju::edge
