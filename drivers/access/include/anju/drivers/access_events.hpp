// Access-control readings as edge::Events: pure mapping from parsed OSDP replies and Wiegand
// frames. Card numbers and PINs never appear in an event: a credential becomes a keyed
// pseudonym (HMAC-SHA-256 with the site's key), keypad entries only carry their length.
// The caller stamps id, time, site, grid code, location and device, and decides which door the
// reader belongs to.
// Thread: pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "anju/drivers/osdp.hpp"
#include "anju/drivers/wiegand.hpp"
#include "anju/edge/event.hpp"

namespace anju::drivers::access {

inline constexpr std::string_view kSourceOsdp = "osdp";
inline constexpr std::string_view kSourceWiegand = "wiegand";

using PseudonymKey = std::array<std::uint8_t, 32>;

// 32 hex digits: the first 16 bytes of HMAC-SHA-256(key, "<kind>:<bit count>:<value>").
// Stable for a credential under one key, not reversible without it.
std::string credential_pseudonym(const PseudonymKey& key, std::string_view kind,
                                 std::size_t bit_count, std::string_view value);

// A Wiegand frame: card_read (attrs: format, bits, facility when known, credential) or, for a
// parity error, reader_fault (attrs: reason, format, bits). `reader` goes to attrs.reader.
std::optional<edge::Event> event_from_wiegand(const wiegand::DecodeResult& r,
                                              const PseudonymKey& key, int reader = 0);

// An OSDP reply:
// - osdp_RAW -> card_read (Wiegand-format data is decoded; a parity error -> reader_fault);
// - osdp_FMT -> card_read;  osdp_KEYPAD -> keypad_entry (attrs.digits = count only);
// - osdp_LSTATR -> tamper (active = tamper) and equipment_fault (active = power failure);
// - osdp_NAK -> reader_fault (attrs: nak code and text);
// - others (ACK, BUSY, PDID, status lists, handshake) -> no event.
std::vector<edge::Event> events_from_reply(const osdp::Reply& reply, const PseudonymKey& key);

// A frame, reply or Secure Channel problem: reader_fault, or security_fault when `security`.
edge::Event fault_event(std::string_view source, std::string_view reason, bool security);

}  // namespace anju::drivers::access
