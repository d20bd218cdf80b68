// Wiegand card readers: the pure, I/O-free part. decode() turns a frame of bits into a card
// (26-bit H10301, 34-bit, 37-bit H10304, anything else as raw bits) or a parity error;
// BitCollector turns D0/D1 pulses with timestamps into frames. No GPIO, no clock: the driver
// that owns the lines passes pulses and times in.
// Thread: BitCollector is a single-owner object (the thread that reads the GPIO events).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anju::drivers::wiegand {

using Bits = std::vector<bool>;  // in the order received: bits[0] is the first (leading parity)

inline constexpr std::size_t kMaxBits = 256;  // longer frames are rejected as noise

enum class Format {
  h10301_26,  // P FFFFFFFF CCCCCCCCCCCCCCCC P: facility 8, card 16
  h10306_34,  // P F(16) C(16) P: facility 16, card 16
  h10304_37,  // P F(16) C(19) P: facility 16, card 19
  raw,        // any other length: bits only, no parity check
};
std::string_view to_string(Format f);

// Which parity bit failed.
enum class Parity {
  leading_even,  // bit 0: even parity over the first half of the data bits
  trailing_odd,  // last bit: odd parity over the second half
};
std::string_view to_string(Parity p);

struct Card {
  Format format = Format::raw;
  std::size_t bit_count = 0;
  std::optional<std::uint32_t> facility;  // absent for raw
  std::optional<std::uint32_t> number;    // card number; absent for raw
  // All bits (parities included) as one number in hex, first bit most significant, with
  // ceil(bit_count / 4) digits: 26 bits -> 7 digits. Card numbers are personal data: callers
  // pseudonymise before anything leaves the gateway.
  std::string hex;
  bool operator==(const Card&) const = default;
};

struct DecodeResult {
  enum class Status {
    card,          // `card` is set
    parity_error,  // a known format with a bad parity: report reader_fault, not a card read
    invalid,       // no bits, or more than kMaxBits
  };
  Status status = Status::invalid;
  std::optional<Card> card;
  std::vector<Parity> failed;   // parity_error: the failed parities (one or both)
  Format format = Format::raw;  // the format recognised by length (also for parity_error)
  std::string error;            // parity_error / invalid: e.g. "26-bit H10301: leading even
                                // parity failed"
};
DecodeResult decode(const Bits& bits);

enum class Line { d0, d1 };  // a pulse on D0 is a 0 bit, on D1 a 1 bit

struct CollectorOptions {
  std::int64_t gap_us = 25'000;  // silence after the last pulse that ends a frame
  std::size_t min_bits = 4;      // shorter frames are reported as too short (noise, a glitch)
  std::size_t max_bits = kMaxBits;
};

struct CollectedFrame {
  Bits bits;                  // empty when too short or too long
  std::size_t bit_count = 0;  // pulses counted, also for a rejected frame
  std::int64_t first_us = 0;  // timestamp of the first and the last pulse
  std::int64_t last_us = 0;
  std::string error;  // "frame too short: 3 bits (minimum 4)", "frame too long: more than 256 bits"
  bool ok() const { return error.empty(); }
};

// Collects D0/D1 pulses into frames. A frame ends when a pulse arrives at least gap_us after
// the previous one (that pulse starts the next frame), or when poll(now) sees gap_us of silence.
// A timestamp earlier than the previous pulse (a clock step) is taken as no gap at all.
class BitCollector {
 public:
  explicit BitCollector(CollectorOptions options = {});
  // Returns the frame this pulse ended, if any.
  std::optional<CollectedFrame> pulse(Line line, std::int64_t timestamp_us);
  // Returns the pending frame when the gap has passed at `now_us`.
  std::optional<CollectedFrame> poll(std::int64_t now_us);
  // Ends the pending frame now (shutdown), whatever the time.
  std::optional<CollectedFrame> flush();
  std::size_t pending_bits() const { return count_; }
  const CollectorOptions& options() const { return options_; }

 private:
  CollectedFrame finish();

  CollectorOptions options_;
  Bits bits_;
  std::size_t count_ = 0;
  std::int64_t first_us_ = 0;
  std::int64_t last_us_ = 0;
};

}  // namespace anju::drivers::wiegand
