// Unit tests of the pure Wiegand decoder and pulse collector
// (drivers/access/src/wiegand_parser.cpp). The frames are written out bit by bit; the parity
// counts are in the comments so that each one can be checked by hand.
#include <catch2/catch.hpp>

#include <string>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/wiegand.hpp"
#include "anju/edge/event.hpp"

using namespace anju::drivers::wiegand;
using Status = DecodeResult::Status;

namespace {

Bits bits(const std::string& s) {
  Bits b;
  for (char c : s)
    if (c == '0' || c == '1') b.push_back(c == '1');
  return b;
}

Bits flipped(Bits b, std::size_t i) {
  b[i] = !b[i];
  return b;
}

// Facility 123 (0111 1011: 6 ones), card 12345 (0011 0000 0011 1001: 6 ones).
// First 12 data bits 01111011 0011: 8 ones -> even parity bit 0.
// Last 12 data bits 0000 0011 1001: 4 ones -> odd parity bit 1.
const Bits k26 = bits("0 01111011 0011000000111001 1");
// Facility 0x1234 (5 ones) -> even parity 1; card 0xABCD (10 ones) -> odd parity 1.
const Bits k34 = bits("1 0001001000110100 1010101111001101 1");
// H10304: facility 1, card 131072 (only the card's second bit, bit 18 of the frame, is set).
// Even parity over bits 1..18: 2 ones -> 0. Odd parity over bits 18..35: 1 one -> 0. If the
// ranges did not share bit 18 the trailing parity would have to be 1.
const Bits k37 = bits("0 0000000000000001 0100000000000000000 0");

}  // namespace

TEST_CASE("Wiegand 26-bit H10301 decodes facility and card", "[wiegand]") {
  REQUIRE(k26.size() == 26);
  auto r = decode(k26);
  INFO(r.error);
  REQUIRE(r.status == Status::card);
  REQUIRE(r.card);
  CHECK(r.card->format == Format::h10301_26);
  CHECK(r.card->bit_count == 26);
  CHECK(r.card->facility == 123u);
  CHECK(r.card->number == 12345u);
  CHECK(r.card->hex == "0F66073");
  CHECK(r.failed.empty());
}

TEST_CASE("Wiegand 26-bit parity errors say which parity failed", "[wiegand]") {
  SECTION("leading even parity") {
    auto r = decode(flipped(k26, 0));
    CHECK(r.status == Status::parity_error);
    CHECK_FALSE(r.card);
    CHECK(r.format == Format::h10301_26);
    CHECK(r.failed == std::vector<Parity>{Parity::leading_even});
    CHECK(r.error == "26-bit H10301: leading even parity failed");
  }
  SECTION("a flipped data bit in the second half") {
    auto r = decode(flipped(k26, 20));
    CHECK(r.status == Status::parity_error);
    CHECK(r.failed == std::vector<Parity>{Parity::trailing_odd});
    CHECK(r.error == "26-bit H10301: trailing odd parity failed");
  }
  SECTION("both") {
    auto r = decode(flipped(flipped(k26, 3), 25));
    CHECK(r.status == Status::parity_error);
    CHECK(r.failed == std::vector<Parity>{Parity::leading_even, Parity::trailing_odd});
    CHECK(r.error == "26-bit H10301: leading even parity and trailing odd parity failed");
  }
  SECTION("all zeros fails the odd parity only") {
    auto r = decode(Bits(26, false));
    CHECK(r.failed == std::vector<Parity>{Parity::trailing_odd});
  }
}

TEST_CASE("Wiegand 34-bit decodes 16/16 with parities", "[wiegand]") {
  REQUIRE(k34.size() == 34);
  auto r = decode(k34);
  INFO(r.error);
  REQUIRE(r.card);
  CHECK(r.card->format == Format::h10306_34);
  CHECK(r.card->facility == 0x1234u);
  CHECK(r.card->number == 0xABCDu);
  CHECK(r.card->hex == "22469579B");
  CHECK(decode(flipped(k34, 1)).failed == std::vector<Parity>{Parity::leading_even});
  CHECK(decode(flipped(k34, 32)).failed == std::vector<Parity>{Parity::trailing_odd});
}

TEST_CASE("Wiegand 37-bit H10304 decodes facility 16 and card 19", "[wiegand]") {
  REQUIRE(k37.size() == 37);
  auto r = decode(k37);
  INFO(r.error);
  REQUIRE(r.card);
  CHECK(r.card->format == Format::h10304_37);
  CHECK(r.card->facility == 1u);
  CHECK(r.card->number == 131072u);
  CHECK(r.card->hex == "0000140000");
  // Bit 18 is covered by both parities: flipping it breaks both.
  CHECK(decode(flipped(k37, 18)).failed ==
        std::vector<Parity>{Parity::leading_even, Parity::trailing_odd});
  CHECK(decode(flipped(k37, 17)).failed == std::vector<Parity>{Parity::leading_even});
  CHECK(decode(flipped(k37, 19)).failed == std::vector<Parity>{Parity::trailing_odd});
}

TEST_CASE("Wiegand other lengths are raw bits with their count, no parity check", "[wiegand]") {
  auto r = decode(Bits(35, true));
  REQUIRE(r.status == Status::card);
  CHECK(r.card->format == Format::raw);
  CHECK(r.card->bit_count == 35);
  CHECK(r.card->hex == "7FFFFFFFF");
  CHECK_FALSE(r.card->facility);
  CHECK_FALSE(r.card->number);
  CHECK(decode(bits("10100101")).card->hex == "A5");
  CHECK(decode(bits("10000")).card->hex == "10");
  CHECK(decode(bits("1")).card->hex == "1");

  auto none = decode({});
  CHECK(none.status == Status::invalid);
  CHECK(none.error == "no bits");
  auto huge = decode(Bits(kMaxBits + 1, true));
  CHECK(huge.status == Status::invalid);
  CHECK(huge.error == "frame too long: 257 bits (maximum 256)");
}

namespace {

// Pulses `b` starting at t0, one bit every 2 ms (a typical reader sends a bit every 1-2 ms).
std::vector<CollectedFrame> send(BitCollector& c, const Bits& b, std::int64_t t0,
                                 std::int64_t step_us = 2'000) {
  std::vector<CollectedFrame> out;
  for (std::size_t i = 0; i < b.size(); ++i) {
    auto f = c.pulse(b[i] ? Line::d1 : Line::d0, t0 + static_cast<std::int64_t>(i) * step_us);
    if (f) out.push_back(*f);
  }
  return out;
}

}  // namespace

TEST_CASE("Wiegand BitCollector ends a frame after the inter-bit gap", "[wiegand]") {
  BitCollector c;
  CHECK(c.options().gap_us == 25'000);
  CHECK(send(c, k26, 1'000'000).empty());
  CHECK(c.pending_bits() == 26);
  const std::int64_t last = 1'000'000 + 25 * 2'000;
  CHECK_FALSE(c.poll(last + 24'999));  // not yet
  auto f = c.poll(last + 25'000);
  REQUIRE(f);
  CHECK(f->ok());
  CHECK(f->bits == k26);
  CHECK(f->first_us == 1'000'000);
  CHECK(f->last_us == last);
  CHECK(c.pending_bits() == 0);
  CHECK_FALSE(c.poll(last + 100'000));  // nothing pending
  REQUIRE(decode(f->bits).card);
  CHECK(decode(f->bits).card->number == 12345u);
}

TEST_CASE("Wiegand BitCollector: a late pulse ends the frame and starts the next", "[wiegand]") {
  BitCollector c;
  CHECK(send(c, k26, 0).empty());
  auto out = send(c, k34, 50 * 2'000 + 30'000);
  REQUIRE(out.size() == 1);
  CHECK(out[0].bits == k26);
  auto f = c.flush();
  REQUIRE(f);
  CHECK(f->bits == k34);
  CHECK_FALSE(c.flush());
}

TEST_CASE("Wiegand BitCollector reports too-short and too-long frames", "[wiegand]") {
  SECTION("a 3-pulse glitch") {
    BitCollector c;
    send(c, bits("101"), 0);
    auto f = c.poll(1'000'000);
    REQUIRE(f);
    CHECK_FALSE(f->ok());
    CHECK(f->bit_count == 3);
    CHECK(f->bits.empty());
    CHECK(f->error == "frame too short: 3 bits (minimum 4)");
  }
  SECTION("a configured minimum and gap") {
    BitCollector c({.gap_us = 5'000, .min_bits = 26, .max_bits = 64});
    send(c, bits("10100101"), 0, 1'000);
    auto f = c.poll(7'000 + 5'000);
    REQUIRE(f);
    CHECK(f->error == "frame too short: 8 bits (minimum 26)");
  }
  SECTION("endless noise") {
    BitCollector c({.gap_us = 25'000, .min_bits = 4, .max_bits = 40});
    send(c, Bits(100, true), 0, 100);
    CHECK(c.pending_bits() == 41);  // counting stops one past the limit
    auto f = c.flush();
    REQUIRE(f);
    CHECK(f->error == "frame too long: more than 40 bits");
    CHECK(f->bits.empty());
  }
}

TEST_CASE("Wiegand BitCollector takes a clock step back as no gap", "[wiegand]") {
  BitCollector c;
  c.pulse(Line::d1, 1'000'000);
  c.pulse(Line::d0, 1'002'000);
  CHECK_FALSE(c.pulse(Line::d1, 10));  // clock stepped back: same frame
  CHECK_FALSE(c.pulse(Line::d1, 2'000));
  CHECK(c.pending_bits() == 4);
  CHECK_FALSE(c.poll(1'002'000 + 24'000));
  auto f = c.poll(1'002'000 + 25'000);
  REQUIRE(f);
  CHECK(f->bits == bits("1011"));
  // Extreme timestamps do not overflow.
  BitCollector e;
  e.pulse(Line::d0, INT64_MIN);
  auto g = e.pulse(Line::d1, INT64_MAX);
  REQUIRE(g);
  CHECK(g->error == "frame too short: 1 bits (minimum 4)");
}

TEST_CASE("Wiegand cards become card_read events with a keyed pseudonym only", "[wiegand]") {
  using anju::drivers::access::credential_pseudonym;
  using anju::drivers::access::event_from_wiegand;
  using anju::drivers::access::PseudonymKey;
  using anju::edge::EventKind;
  PseudonymKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);
  // Python: hmac.new(bytes(range(32)), b"wiegand:26:0F66073", hashlib.sha256).hexdigest()[:32]
  CHECK(credential_pseudonym(key, "wiegand", 26, "0F66073") == "e68725096192b06a2914f5c0682cbc28");

  auto ev = event_from_wiegand(decode(k26), key, 2);
  REQUIRE(ev);
  CHECK(ev->kind == EventKind::card_read);
  CHECK(ev->source == "wiegand");
  CHECK(ev->severity == 4);
  CHECK_FALSE(ev->active);
  CHECK(ev->attrs["reader"] == 2);
  CHECK(ev->attrs["format"] == "h10301_26");
  CHECK(ev->attrs["bits"] == 26);
  CHECK(ev->attrs["facility"] == 123);
  CHECK(ev->attrs["credential"] == "e68725096192b06a2914f5c0682cbc28");
  const std::string json = anju::edge::encode(*ev);
  CHECK(json.find("12345") == std::string::npos);  // the card number
  CHECK(json.find("0F66073") == std::string::npos);
  PseudonymKey other = key;
  other[0] ^= 1;
  CHECK(event_from_wiegand(decode(k26), other)->attrs["credential"] != ev->attrs["credential"]);

  auto fault = event_from_wiegand(decode(flipped(k26, 0)), key, 1);
  REQUIRE(fault);
  CHECK(fault->kind == EventKind::reader_fault);
  CHECK(fault->severity == 3);
  CHECK(fault->attrs["reason"] == "26-bit H10301: leading even parity failed");
  CHECK(fault->attrs["format"] == "h10301_26");
  CHECK_FALSE(fault->attrs.contains("credential"));
}
