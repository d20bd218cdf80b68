// CRC-32 (IEEE 802.3), for framing records on disk and fingerprinting messages. Thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

namespace anju::edge {

std::uint32_t crc32(std::string_view data, std::uint32_t seed = 0);

}  // namespace anju::edge
