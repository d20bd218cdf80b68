// libFuzzer target for the Wiegand decoder and pulse collector
// (drivers/access/src/wiegand_parser.cpp). The input is read as bits for decode() and as a
// pulse train (line, time step) for the BitCollector.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/wiegand.hpp"
#include "anju/edge/event.hpp"

namespace wg = anju::drivers::wiegand;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_decoded(const wg::Bits& bits) {
  const auto r = wg::decode(bits);
  static const anju::drivers::access::PseudonymKey key{};
  const auto ev = anju::drivers::access::event_from_wiegand(r, key);
  check(ev.has_value() && !anju::edge::encode(*ev).empty());
  switch (r.status) {
    case wg::DecodeResult::Status::card:
      check(r.card && r.error.empty() && r.failed.empty());
      check(r.card->bit_count == bits.size());
      check(r.card->hex.size() == (bits.size() + 3) / 4);
      check(r.card->facility.has_value() == (r.card->format != wg::Format::raw));
      check(r.card->hex.find_first_not_of("0123456789ABCDEF") == std::string::npos);
      if (r.card->format == wg::Format::h10301_26)
        check(*r.card->facility < 256 && *r.card->number < 65536);
      if (r.card->format == wg::Format::h10304_37) check(*r.card->number < (1u << 19));
      break;
    case wg::DecodeResult::Status::parity_error:
      check(!r.card && !r.error.empty() && !r.failed.empty() && r.failed.size() <= 2);
      check(r.format != wg::Format::raw);
      break;
    case wg::DecodeResult::Status::invalid:
      check(!r.card && !r.error.empty());
      check(bits.empty() || bits.size() > wg::kMaxBits);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // decode(): one bit per byte, and eight bits per byte.
  wg::Bits low, all;
  for (std::size_t i = 0; i < size; ++i) {
    low.push_back((data[i] & 1) != 0);
    for (int b = 7; b >= 0 && all.size() <= wg::kMaxBits + 8; --b)
      all.push_back(((data[i] >> b) & 1) != 0);
  }
  check_decoded(low);
  check_decoded(all);

  // BitCollector: the first 3 bytes choose the options, then 3 bytes per pulse: line, and a
  // signed 16-bit time step in units of 8 us (negative steps are clock steps back).
  if (size < 3) return 0;
  wg::CollectorOptions o;
  o.gap_us = 1 + static_cast<std::int64_t>(data[0]) * 200;
  o.min_bits = data[1] % 40;
  o.max_bits = data[2];
  wg::BitCollector c(o);
  std::int64_t t = 0;
  std::size_t pulses = 0, collected = 0;
  auto take = [&](const std::optional<wg::CollectedFrame>& f) {
    if (!f) return;
    check(f->ok() == f->error.empty());
    check(f->ok() ? f->bits.size() == f->bit_count : f->bits.empty());
    check(f->bit_count >= 1 && f->bits.size() <= c.options().max_bits);
    check(f->bits.size() >= (f->ok() ? c.options().min_bits : 0));
    check(f->last_us >= f->first_us);
    collected += f->bit_count;
    if (f->ok()) check_decoded(f->bits);
  };
  for (std::size_t i = 3; i + 2 < size; i += 3) {
    std::int16_t step = 0;
    const std::uint16_t u = static_cast<std::uint16_t>(data[i + 1] | (data[i + 2] << 8));
    std::memcpy(&step, &u, sizeof step);
    t += static_cast<std::int64_t>(step) * 8;
    take(c.pulse((data[i] & 1) ? wg::Line::d1 : wg::Line::d0, t));
    ++pulses;
    if (data[i] & 2) take(c.poll(t + 30'000));
  }
  take(c.flush());
  check(c.pending_bits() == 0);
  check(collected <= pulses);
  return 0;
}
