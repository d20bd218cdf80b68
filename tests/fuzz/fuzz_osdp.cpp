// libFuzzer target for the OSDP codec (drivers/access/src/osdp_parser.cpp). The input is fed to
// the FrameReader in chunks, to decode_frame whole, to every reply parser, and as frames to an
// active Secure Channel. Nothing may crash, throw or break the documented invariants.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/osdp.hpp"
#include "anju/edge/event.hpp"

namespace osdp = anju::drivers::osdp;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

// Exactly one of value / error.
template <typename R>
void one_of(const R& r, bool has_value) {
  check(has_value != !r.error.empty());
  check(r.error.size() < 300);
}

const osdp::Random kRndA{0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7};
const osdp::Random kRndB{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7};

// A control panel with an established session (Annex E randoms, SCBK-D).
osdp::SecureChannel active_cp() {
  osdp::SecureChannel cp(osdp::Key{}, true);
  osdp::SecureChannel pd(osdp::Key{}, true, osdp::SecureChannel::Role::peripheral);
  auto chlng = cp.start(1, 1, kRndA);
  auto ccrypt = pd.answer_chlng(*osdp::decode_frame(chlng.bytes).frame, {}, kRndB);
  check(cp.accept_ccrypt(*osdp::decode_frame(ccrypt.bytes).frame).empty());
  auto scrypt = cp.scrypt(1, 2);
  auto rmac = pd.answer_scrypt(*osdp::decode_frame(scrypt.bytes).frame);
  check(cp.accept_rmac_i(*osdp::decode_frame(rmac.bytes).frame).empty());
  check(cp.active());
  return cp;
}

void check_frame(const osdp::Frame& f) {
  check(f.raw.size() >= osdp::kMinFrameChecksum && f.raw.size() <= osdp::kMaxFrameBytes);
  check(f.raw[0] == osdp::kSom);
  check(f.address <= 0x7F && f.sqn <= 3);
  check(f.mac.has_value() == (f.scb && osdp::scb_has_mac(f.scb->type)));
  // A decoded frame decodes again to the same thing.
  auto again = osdp::decode_frame(f.raw);
  check(again.frame && again.frame->data == f.data && again.frame->code == f.code);
  // Without a MAC (and with CTRL's reserved bits 4-7 clear, which the codec ignores),
  // re-encoding the parts gives the same bytes.
  if (!f.mac && (f.raw[4] & 0xF0) == 0) {
    osdp::EncodeOptions o{.crc = f.crc, .scb = f.scb};
    auto enc = f.from_pd ? osdp::encode_reply(f.address, f.sqn, f.code, f.data, o)
                         : osdp::encode_command(f.address, f.sqn, f.code, f.data, o);
    check(enc.error.empty() && enc.bytes == f.raw);
  }
  // Every frame offered to an active session: accepted only if its MAC verifies, which a fuzzer
  // cannot forge; a rejection fails the session.
  auto cp = active_cp();
  auto opened = cp.unwrap(f);
  one_of(opened, opened.message.has_value());
  if (opened.message)
    check(!opened.message->secured && f.code == osdp::reply::busy);
  else
    check(cp.state() == osdp::SecureChannel::State::failed);
  auto reply = osdp::parse_reply(f.code, f.data);
  one_of(reply, reply.reply.has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::uint8_t> in(data, size);

  auto whole = osdp::decode_frame(in);
  one_of(whole, whole.frame.has_value());
  if (whole.frame) check_frame(*whole.frame);

  // The reader, in chunks whose sizes come from the input itself.
  osdp::FrameReader reader;
  std::size_t pos = 0, frames = 0;
  while (pos < size) {
    const std::size_t n = std::min<std::size_t>(size - pos, 1 + data[pos] % 17);
    for (const auto& r : reader.feed(in.subspan(pos, n))) {
      one_of(r, r.frame.has_value());
      if (r.frame) {
        check_frame(*r.frame);
        ++frames;
      }
    }
    check(reader.buffered() <= osdp::kMaxFrameBytes + 17);
    pos += n;
  }
  check(frames * osdp::kMinFrameChecksum <= size);

  // Every reply parser on the raw input.
  static const anju::drivers::access::PseudonymKey key{};
  for (int code = 0x40; code <= 0x7A; ++code) {
    auto r = osdp::parse_reply(static_cast<std::uint8_t>(code), in);
    one_of(r, r.reply.has_value());
    if (!r.reply) continue;
    // Events from any accepted reply encode, and never carry the raw bytes of a credential.
    for (const auto& ev : anju::drivers::access::events_from_reply(*r.reply, key)) {
      check(anju::edge::is_binary_kind(ev.kind) == ev.active.has_value());
      check(!anju::edge::encode(ev).empty());
      check(!ev.attrs.contains("keys") && !ev.attrs.contains("bits_hex"));
    }
  }
  auto plain = osdp::decrypt_data(osdp::kScbkD, osdp::Block{}, in);
  one_of(plain, plain.plaintext.has_value());
  if (plain.plaintext) check(plain.plaintext->size() < size);

  // Encoding arbitrary data as a reply round-trips when it fits.
  if (size > 0) {
    auto enc = osdp::encode_reply(data[0] & 0x7F, data[0] & 3,
                                  static_cast<std::uint8_t>(0x40 + data[0] % 0x3A), in.subspan(1));
    if (enc.error.empty()) {
      auto dec = osdp::decode_frame(enc.bytes);
      check(dec.frame && dec.frame->data.size() == size - 1);
    }
  }
  return 0;
}
