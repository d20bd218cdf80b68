// Wiegand frame decoding and pulse collection. Pure: no I/O, no clock, no exceptions on input.
#include "anju/drivers/wiegand.hpp"

#include <algorithm>
#include <utility>

namespace anju::drivers::wiegand {
namespace {

// later - earlier for later > earlier, without signed overflow.
std::uint64_t elapsed(std::int64_t earlier, std::int64_t later) {
  return static_cast<std::uint64_t>(later) - static_cast<std::uint64_t>(earlier);
}

// One fixed-length format: where the fields and the two parity ranges are (bit indices as
// received, inclusive ranges). The leading parity bit (index 0) makes its range plus itself
// even; the trailing one (last index) makes its range plus itself odd.
struct Layout {
  Format format;
  std::size_t bits;
  std::string_view name;
  std::size_t fac_first, fac_len;
  std::size_t card_first, card_len;
  std::size_t even_first, even_last;  // data bits covered by the leading even parity
  std::size_t odd_first, odd_last;    // data bits covered by the trailing odd parity
};

// 26: even over bits 1..12, odd over 13..24.
// 34: even over 1..16, odd over 17..32.
// 37 (H10304): even over 1..18, odd over 18..35 (the ranges share bit 18).
constexpr Layout kLayouts[] = {
    {Format::h10301_26, 26, "26-bit H10301", 1, 8, 9, 16, 1, 12, 13, 24},
    {Format::h10306_34, 34, "34-bit H10306", 1, 16, 17, 16, 1, 16, 17, 32},
    {Format::h10304_37, 37, "37-bit H10304", 1, 16, 17, 19, 1, 18, 18, 35},
};

std::uint32_t field(const Bits& b, std::size_t first, std::size_t len) {
  std::uint32_t v = 0;
  for (std::size_t i = first; i < first + len; ++i) v = (v << 1) | (b[i] ? 1u : 0u);
  return v;
}

std::size_t ones(const Bits& b, std::size_t first, std::size_t last) {
  std::size_t n = 0;
  for (std::size_t i = first; i <= last; ++i) n += b[i] ? 1 : 0;
  return n;
}

std::string to_hex(const Bits& b) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  const std::size_t digits = (b.size() + 3) / 4;
  const std::size_t pad = digits * 4 - b.size();  // leading zero bits of the first digit
  std::string out;
  out.reserve(digits);
  unsigned nibble = 0;
  std::size_t in_nibble = pad;
  for (bool bit : b) {
    nibble = (nibble << 1) | (bit ? 1u : 0u);
    if (++in_nibble == 4) {
      out.push_back(kDigits[nibble & 0x0F]);
      nibble = 0;
      in_nibble = 0;
    }
  }
  return out;
}

}  // namespace

std::string_view to_string(Format f) {
  switch (f) {
    case Format::h10301_26:
      return "h10301_26";
    case Format::h10306_34:
      return "h10306_34";
    case Format::h10304_37:
      return "h10304_37";
    case Format::raw:
      return "raw";
  }
  return "unknown";
}

std::string_view to_string(Parity p) {
  return p == Parity::leading_even ? "leading even parity" : "trailing odd parity";
}

DecodeResult decode(const Bits& bits) {
  DecodeResult r;
  if (bits.empty()) {
    r.error = "no bits";
    return r;
  }
  if (bits.size() > kMaxBits) {
    r.error = "frame too long: " + std::to_string(bits.size()) + " bits (maximum " +
              std::to_string(kMaxBits) + ")";
    return r;
  }
  const Layout* layout = nullptr;
  for (const auto& l : kLayouts)
    if (l.bits == bits.size()) layout = &l;
  Card card;
  card.bit_count = bits.size();
  card.hex = to_hex(bits);
  if (!layout) {
    card.format = Format::raw;
    r.status = DecodeResult::Status::card;
    r.format = Format::raw;
    r.card = std::move(card);
    return r;
  }
  r.format = layout->format;
  const bool even_ok =
      (ones(bits, layout->even_first, layout->even_last) + (bits[0] ? 1 : 0)) % 2 == 0;
  const bool odd_ok =
      (ones(bits, layout->odd_first, layout->odd_last) + (bits[layout->bits - 1] ? 1 : 0)) % 2 == 1;
  if (!even_ok) r.failed.push_back(Parity::leading_even);
  if (!odd_ok) r.failed.push_back(Parity::trailing_odd);
  if (!r.failed.empty()) {
    r.status = DecodeResult::Status::parity_error;
    r.error = std::string(layout->name) + ": ";
    for (std::size_t i = 0; i < r.failed.size(); ++i)
      r.error += (i ? " and " : "") + std::string(to_string(r.failed[i]));
    r.error += " failed";
    return r;
  }
  card.format = layout->format;
  card.facility = field(bits, layout->fac_first, layout->fac_len);
  card.number = field(bits, layout->card_first, layout->card_len);
  r.status = DecodeResult::Status::card;
  r.card = std::move(card);
  return r;
}

// --- BitCollector -------------------------------------------------------------------------------

BitCollector::BitCollector(CollectorOptions options) : options_(options) {
  if (options_.gap_us < 1) options_.gap_us = 1;
  if (options_.max_bits == 0 || options_.max_bits > kMaxBits) options_.max_bits = kMaxBits;
  options_.min_bits = std::clamp<std::size_t>(options_.min_bits, 1, options_.max_bits);
}

CollectedFrame BitCollector::finish() {
  CollectedFrame f;
  f.bit_count = count_;
  f.first_us = first_us_;
  f.last_us = last_us_;
  if (count_ > options_.max_bits)
    f.error = "frame too long: more than " + std::to_string(options_.max_bits) + " bits";
  else if (count_ < options_.min_bits)
    f.error = "frame too short: " + std::to_string(count_) + " bits (minimum " +
              std::to_string(options_.min_bits) + ")";
  else
    f.bits = std::move(bits_);
  bits_.clear();
  count_ = 0;
  return f;
}

std::optional<CollectedFrame> BitCollector::pulse(Line line, std::int64_t ts) {
  std::optional<CollectedFrame> done;
  // A step back in time counts as no gap; the difference is computed without overflow.
  if (count_ > 0 && ts > last_us_ &&
      elapsed(last_us_, ts) >= static_cast<std::uint64_t>(options_.gap_us))
    done = finish();
  if (count_ == 0) first_us_ = ts;
  if (count_ == 0 || ts > last_us_) last_us_ = ts;
  if (count_ < options_.max_bits) bits_.push_back(line == Line::d1);
  if (count_ <= options_.max_bits) ++count_;  // counts one past the limit: "too long"
  return done;
}

std::optional<CollectedFrame> BitCollector::poll(std::int64_t now_us) {
  if (count_ == 0 || now_us <= last_us_ ||
      elapsed(last_us_, now_us) < static_cast<std::uint64_t>(options_.gap_us))
    return std::nullopt;
  return finish();
}

std::optional<CollectedFrame> BitCollector::flush() {
  if (count_ == 0) return std::nullopt;
  return finish();
}

}  // namespace anju::drivers::wiegand
