// Access-control readings as edge::Events. Pure: no I/O; HMAC through OpenSSL libcrypto.
#include "anju/drivers/access_events.hpp"

#include "anju/drivers/access_common.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <type_traits>
#include <variant>

namespace anju::drivers::access {
namespace {

std::string to_hex(const std::uint8_t* p, std::size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[p[i] >> 4]);
    s.push_back(kDigits[p[i] & 0x0F]);
  }
  return s;
}

edge::Event base(std::string_view source, edge::EventKind kind, int severity) {
  edge::Event ev;
  ev.kind = kind;
  ev.severity = severity;
  ev.source = std::string(source);
  if (edge::is_binary_kind(kind)) ev.active = true;
  return ev;
}

// OSDP RAW data as wiegand::Bits: bit_count bits, first bit in the MSB of the first byte.
wiegand::Bits unpack(const osdp::RawCard& c) {
  wiegand::Bits bits;
  bits.reserve(c.bit_count);
  for (std::size_t i = 0; i < c.bit_count && i / 8 < c.bits.size(); ++i)
    bits.push_back(((c.bits[i / 8] >> (7 - i % 8)) & 1) != 0);
  return bits;
}

}  // namespace

std::string credential_pseudonym(const PseudonymKey& key, std::string_view kind,
                                 std::size_t bit_count, std::string_view value) {
  const std::string msg =
      std::string(kind) + ":" + std::to_string(bit_count) + ":" + std::string(value);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len) ||
      len < 16)
    return "";  // never the value itself
  return to_hex(mac, 16);
}

std::optional<edge::Event> event_from_wiegand(const wiegand::DecodeResult& r,
                                              const PseudonymKey& key, int reader) {
  using Status = wiegand::DecodeResult::Status;
  if (r.status == Status::card && r.card) {
    auto ev = base(kSourceWiegand, edge::EventKind::card_read, 4);
    ev.attrs["reader"] = reader;
    ev.attrs["format"] = std::string(wiegand::to_string(r.card->format));
    ev.attrs["bits"] = r.card->bit_count;
    if (r.card->facility) ev.attrs["facility"] = *r.card->facility;
    ev.attrs["credential"] = credential_pseudonym(key, "wiegand", r.card->bit_count, r.card->hex);
    return ev;
  }
  auto ev = base(kSourceWiegand, edge::EventKind::reader_fault, 3);
  ev.attrs["reader"] = reader;
  ev.attrs["reason"] = r.error;
  if (r.status == Status::parity_error)
    ev.attrs["format"] = std::string(wiegand::to_string(r.format));
  return ev;
}

std::vector<edge::Event> events_from_reply(const osdp::Reply& reply, const PseudonymKey& key) {
  std::vector<edge::Event> out;
  std::visit(
      [&](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, osdp::RawCard>) {
          const auto bits = unpack(r);
          if (r.format == 1) {  // Wiegand: check parity, name the format
            auto ev = event_from_wiegand(wiegand::decode(bits), key, r.reader);
            if (ev) {
              ev->source = std::string(kSourceOsdp);
              out.push_back(std::move(*ev));
            }
            return;
          }
          auto ev = base(kSourceOsdp, edge::EventKind::card_read, 4);
          ev.attrs["reader"] = r.reader;
          ev.attrs["format"] = "raw";
          ev.attrs["bits"] = r.bit_count;
          ev.attrs["credential"] =
              credential_pseudonym(key, "raw", r.bit_count, to_hex(r.bits.data(), r.bits.size()));
          out.push_back(std::move(ev));
        } else if constexpr (std::is_same_v<T, osdp::FormattedCard>) {
          auto ev = base(kSourceOsdp, edge::EventKind::card_read, 4);
          ev.attrs["reader"] = r.reader;
          ev.attrs["format"] = "ascii";
          ev.attrs["credential"] = credential_pseudonym(key, "ascii", r.text.size(), r.text);
          out.push_back(std::move(ev));
        } else if constexpr (std::is_same_v<T, osdp::Keypad>) {
          auto ev = base(kSourceOsdp, edge::EventKind::keypad_entry, 4);
          ev.attrs["reader"] = r.reader;
          ev.attrs["digits"] = r.keys.size();
          out.push_back(std::move(ev));
        } else if constexpr (std::is_same_v<T, osdp::LocalStatus>) {
          auto tamper = base(kSourceOsdp, edge::EventKind::tamper, r.tamper ? 2 : 4);
          tamper.active = r.tamper;
          out.push_back(std::move(tamper));
          auto power = base(kSourceOsdp, edge::EventKind::equipment_fault, r.power_failure ? 3 : 4);
          power.active = r.power_failure;
          power.attrs["fault"] = "power";
          out.push_back(std::move(power));
        } else if constexpr (std::is_same_v<T, osdp::Nak>) {
          auto ev = base(kSourceOsdp, edge::EventKind::reader_fault, 3);
          ev.attrs["nak"] = r.reason;
          ev.attrs["reason"] = osdp::nak_reason_text(r.reason);
          out.push_back(std::move(ev));
        }
      },
      reply);
  return out;
}

edge::Event fault_event(std::string_view source, std::string_view reason, bool security) {
  auto ev = base(source, security ? edge::EventKind::security_fault : edge::EventKind::reader_fault,
                 security ? 2 : 3);
  ev.attrs["reason"] = std::string(reason);
  return ev;
}

}  // namespace anju::drivers::access

namespace anju::drivers::access {

edge::Event passage_event(const AccessDecision& d, std::string_view credential_pseudonym,
                          std::string_view door) {
  edge::Event ev;
  ev.kind = d.granted ? edge::EventKind::passage_granted : edge::EventKind::passage_denied;
  ev.severity = 4;
  ev.attrs["credential"] = std::string(credential_pseudonym);
  ev.attrs["door"] = std::string(door);
  ev.attrs["reason"] = d.reason.empty() ? std::string(d.granted ? "granted" : "unknown") : d.reason;
  if (!d.label.empty()) ev.attrs["label"] = d.label;
  return ev;
}

}  // namespace anju::drivers::access
