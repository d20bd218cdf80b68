// Unit tests of the pure OSDP codec, reply parsers and Secure Channel
// (drivers/access/src/osdp_parser.cpp).
//
// Known values and where they come from:
// - CRC-16 and checksum examples, SCBK-D session keys, cryptograms and initial R-MAC: SIA OSDP
//   v2.2 Annex E, as transcribed in goToMain/libosdp tests/unit-tests/test-sc-sia-vectors.c.
// - MAC and data-encryption vectors: NIST SP 800-38A F.2.1 (AES-128-CBC) and the OSDP-padded
//   blocks derived from it in goToMain/libosdp tests/unit-tests/test-sc.c.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "anju/drivers/access_events.hpp"
#include "anju/drivers/osdp.hpp"
#include "anju/edge/event.hpp"

using namespace anju::drivers::osdp;

namespace {

Bytes hex(const std::string& s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else
      continue;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi * 16 + v));
      hi = -1;
    }
  }
  return out;
}

template <std::size_t N>
std::array<std::uint8_t, N> arr(const std::string& s) {
  const Bytes b = hex(s);
  REQUIRE(b.size() == N);
  std::array<std::uint8_t, N> a{};
  std::copy(b.begin(), b.end(), a.begin());
  return a;
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

Frame decoded(const Bytes& b) {
  auto r = decode_frame(b);
  INFO(r.error);
  REQUIRE(r.frame);
  return *r.frame;
}

Bytes reply_bytes(std::uint8_t code, const Bytes& data, std::uint8_t addr = 1,
                  std::uint8_t sqn = 1) {
  auto r = encode_reply(addr, sqn, code, data);
  REQUIRE(r.error.empty());
  return r.bytes;
}

template <typename T>
T parsed(std::uint8_t code, const Bytes& data) {
  auto r = parse_reply(code, data);
  INFO(r.error);
  REQUIRE(r.reply);
  REQUIRE(std::holds_alternative<T>(*r.reply));
  return std::get<T>(*r.reply);
}

// Annex E handshake values.
constexpr Random kRndA{0xB0, 0xB1, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7};
constexpr Random kRndB{0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7};
constexpr ClientUid kUid{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};

}  // namespace

TEST_CASE("OSDP CRC-16 and checksum match the Annex E examples", "[osdp]") {
  CHECK(crc16(hex("53 7F 0D 00 04 6E 00 80 25 00 00")) == 0x386E);  // bytes 6E 38
  CHECK(crc16(hex("53 00 09 00 04 61 00")) == 0x66C0);              // bytes C0 66
  CHECK(checksum(hex("53 7F 0C 00 00 6E 00 80 25 00 00")) == 0x0F);
  CHECK(checksum(hex("53 00 08 00 00 61 00")) == 0x44);
}

TEST_CASE("OSDP encode_command builds the Annex E frames byte for byte", "[osdp]") {
  const auto id = id_report();
  auto r = encode_command(0x00, 0, id.code, id.data);
  REQUIRE(r.error.empty());
  CHECK(r.bytes == hex("53 00 09 00 04 61 00 C0 66"));

  auto cs = comset(0x00, 9600);
  REQUIRE(cs.command);
  r = encode_command(kBroadcast, 0, cs.command->code, cs.command->data);
  REQUIRE(r.error.empty());
  CHECK(r.bytes == hex("53 7F 0D 00 04 6E 00 80 25 00 00 6E 38"));

  r = encode_command(0x00, 0, id.code, id.data, {.crc = false, .scb = std::nullopt});
  REQUIRE(r.error.empty());
  CHECK(r.bytes == hex("53 00 08 00 00 61 00 44"));
}

TEST_CASE("OSDP encode_command rejects bad arguments", "[osdp]") {
  CHECK(encode_command(0x80, 1, cmd::poll, {}).error.find("address") != std::string::npos);
  CHECK(encode_command(1, 4, cmd::poll, {}).error.find("sequence number 4") != std::string::npos);
  const Bytes huge(kMaxFrameBytes, 0);
  CHECK(encode_command(1, 1, cmd::led, huge).error.find("exceeds the maximum") !=
        std::string::npos);
  CHECK(encode_command(1, 1, cmd::poll, {}, {.crc = true, .scb = SecurityBlock{0x15, {}}})
            .error.find("needs a MAC") != std::string::npos);
}

TEST_CASE("OSDP frames round-trip through decode_frame", "[osdp]") {
  SECTION("command with CRC") {
    const auto c = led({LedControl{0, 0, {2, 5, 5, 1, 0, 30}, {1, 0, 0, 2, 2, 0}}});
    auto r = encode_command(0x05, 2, c.code, c.data);
    REQUIRE(r.error.empty());
    const Frame f = decoded(r.bytes);
    CHECK(f.address == 0x05);
    CHECK_FALSE(f.from_pd);
    CHECK(f.sqn == 2);
    CHECK(f.crc);
    CHECK_FALSE(f.scb);
    CHECK(f.code == cmd::led);
    CHECK(f.data == c.data);
    CHECK_FALSE(f.mac);
    CHECK(f.raw == r.bytes);
  }
  SECTION("reply with checksum") {
    auto r = encode_reply(0x12, 3, reply::lstatr, hex("01 00"), {.crc = false, .scb = {}});
    REQUIRE(r.error.empty());
    CHECK(r.bytes[1] == (0x12 | 0x80));
    const Frame f = decoded(r.bytes);
    CHECK(f.address == 0x12);
    CHECK(f.from_pd);
    CHECK(f.sqn == 3);
    CHECK_FALSE(f.crc);
    CHECK(f.code == reply::lstatr);
    CHECK(f.data == hex("01 00"));
  }
  SECTION("with a plain security block") {
    auto r = encode_command(0x01, 1, cmd::chlng, hex("B0 B1 B2 B3 B4 B5 B6 B7"),
                            {.crc = true, .scb = SecurityBlock{scs::chlng, {0x00}}});
    REQUIRE(r.error.empty());
    // SOM ADDR LEN(2) CTRL(SQN 1 | CRC | SCB) SEC_BLK_LEN 3, type 0x11, data 0
    CHECK(Bytes(r.bytes.begin(), r.bytes.begin() + 9) == hex("53 01 13 00 0D 03 11 00 76"));
    const Frame f = decoded(r.bytes);
    REQUIRE(f.scb);
    CHECK(f.scb->type == scs::chlng);
    CHECK(f.scb->data == hex("00"));
    CHECK(f.code == cmd::chlng);
    CHECK(f.data.size() == 8);
  }
  CHECK(next_sqn(0) == 1);
  CHECK(next_sqn(1) == 2);
  CHECK(next_sqn(3) == 1);
}

TEST_CASE("OSDP decode_frame names what is wrong", "[osdp]") {
  const Bytes good = hex("53 00 09 00 04 61 00 C0 66");
  auto err = [](const Bytes& b) {
    auto r = decode_frame(b);
    CHECK_FALSE(r.frame);
    return r.error;
  };
  CHECK(err({}) == "truncated: empty frame");
  CHECK(err(hex("54 00 09 00 04 61 00 C0 66")) == "bad SOM 0x54 (expected 0x53)");
  CHECK(err(hex("53 00 09")) == "truncated: 3 bytes, the header needs 5");
  CHECK(err(Bytes(good.begin(), good.end() - 1)) == "truncated: 8 of 9 bytes");
  CHECK(err(cat({good, hex("00")})) == "1 bytes after the end of the frame (length field 9)");
  CHECK(err(hex("53 00 07 00 04 61 00")) == "length field 7 too small (minimum 8)");
  CHECK(err(hex("53 00 FF 7F 04 61 00")) == "length field 32767 exceeds the maximum of 1536");

  Bytes bad_crc = good;
  bad_crc[8] = 0x67;
  CHECK(err(bad_crc) == "CRC mismatch: frame has 0x67c0, computed 0x66c0");
  Bytes flipped = good;
  flipped[6] = 0x01;  // a data bit flipped in transit
  CHECK(err(flipped).rfind("CRC mismatch: frame has 0x66c0, computed 0x", 0) == 0);
  CHECK(err(hex("53 00 08 00 00 61 00 45")) == "checksum mismatch: frame has 0x45, computed 0x44");

  // Sets LEN to the final size and appends the CRC, so that only the part under test is wrong.
  auto with_crc = [](Bytes b) {
    const auto len = b.size() + 2;
    b[2] = static_cast<std::uint8_t>(len & 0xFF);
    b[3] = static_cast<std::uint8_t>(len >> 8);
    const auto c = crc16(b);
    b.push_back(static_cast<std::uint8_t>(c & 0xFF));
    b.push_back(static_cast<std::uint8_t>(c >> 8));
    return b;
  };
  CHECK(decode_frame(with_crc(hex("53 00 00 00 04 61 00"))).frame);  // the helper itself
  // SCB announced with SEC_BLK_LEN 9 in a frame that has 3 bytes left.
  CHECK(err(with_crc(hex("53 01 00 00 0C 09 11 60"))) ==
        "security block length 9 exceeds the frame");
  CHECK(err(with_crc(hex("53 01 00 00 0C 01 11 60"))) ==
        "security block length 1 too small (minimum 2)");
  CHECK(err(with_crc(hex("53 01 00 00 0C 02 20 60 00"))) ==
        "security block type 0x20 unknown (expected 0x11..0x18)");
  // SCB 0x15 needs 4 MAC bytes after the code.
  CHECK(err(with_crc(hex("53 01 00 00 0C 02 15 60 00"))) ==
        "too short for the 4-byte MAC of security block 0x15");
}

TEST_CASE("OSDP command builders lay out the data as the spec says", "[osdp]") {
  CHECK(poll() == Command{cmd::poll, {}});
  CHECK(id_report() == Command{cmd::id, {0x00}});
  CHECK(capabilities() == Command{cmd::cap, {0x00}});
  CHECK(local_status().code == 0x64);
  CHECK(input_status().code == 0x65);
  CHECK(output_status().code == 0x66);

  // Door strike on output 1 for 5 s (control code 5 = temporary on, timer 50 x 100 ms).
  CHECK(output({{1, 5, 50}, {2, 1, 0}}) == Command{cmd::out, hex("01 05 32 00 02 01 00 00")});

  const auto l = led({LedControl{0, 1, {2, 3, 4, 2, 0, 0x0102}, {1, 0, 0, 1, 1, 0}}});
  CHECK(l.code == 0x69);
  CHECK(l.data == hex("00 01 02 03 04 02 00 02 01 01 00 00 01 01"));
  CHECK(l.data.size() == 14);

  CHECK(buzzer({0, 2, 1, 1, 3}) == Command{cmd::buz, hex("00 02 01 01 03")});

  auto cs = comset(0x05, 115200);
  REQUIRE(cs.command);
  CHECK(*cs.command == Command{cmd::comset, hex("05 00 C2 01 00")});
  CHECK(comset(0x7F, 9600).error == "osdp_COMSET: address 127 out of range (0..126)");
  CHECK(comset(1, 12345).error == "osdp_COMSET: baud rate 12345 not supported");

  const auto ks = keyset(kScbkD);
  CHECK(ks.code == 0x75);
  CHECK(ks.data == hex("01 10 30 31 32 33 34 35 36 37 38 39 3A 3B 3C 3D 3E 3F"));
  CHECK(challenge(kRndA) == Command{cmd::chlng, hex("B0 B1 B2 B3 B4 B5 B6 B7")});
  CHECK(command_name(cmd::keyset) == "osdp_KEYSET");
  CHECK(command_name(0x99) == "unknown command 0x99");
}

TEST_CASE("OSDP reply parsers: every reply we use", "[osdp]") {
  parsed<Ack>(reply::ack, {});
  parsed<Busy>(reply::busy, {});

  const auto nak = parsed<Nak>(reply::nak, hex("04"));
  CHECK(nak.reason == 4);
  CHECK(nak_reason_text(nak.reason) == "unexpected sequence number");
  CHECK(nak_reason_text(1) == "message check character(s) error (bad checksum or CRC)");
  CHECK(nak_reason_text(6) == "communication security conditions not met (encryption required)");
  CHECK(nak_reason_text(9) == "unable to process command record");
  CHECK(nak_reason_text(42) == "unknown NAK reason 42");
  CHECK(parsed<Nak>(reply::nak, hex("07 01")).detail == hex("01"));

  // Vendor OUI 0A:0B:0C, model 1, version 2, serial 0x12345678, firmware 3.4.5
  const auto id = parsed<PdId>(reply::pdid, hex("0C 0B 0A 01 02 78 56 34 12 03 04 05"));
  CHECK(id.vendor_oui == 0x0A0B0C);
  CHECK(id.model == 1);
  CHECK(id.version == 2);
  CHECK(id.serial == 0x12345678u);
  CHECK(id.fw_major == 3);
  CHECK(id.fw_minor == 4);
  CHECK(id.fw_build == 5);

  const auto cap = parsed<PdCap>(reply::pdcap, hex("01 01 02  04 01 01  09 01 01"));
  REQUIRE(cap.caps.size() == 3);
  CHECK(cap.caps[0].function == 1);
  CHECK(cap.caps[0].items == 2);
  CHECK(cap.supports_secure_channel());
  CHECK_FALSE(parsed<PdCap>(reply::pdcap, hex("09 00 00")).supports_secure_channel());

  const auto ls = parsed<LocalStatus>(reply::lstatr, hex("01 00"));
  CHECK(ls.tamper);
  CHECK_FALSE(ls.power_failure);
  CHECK(parsed<LocalStatus>(reply::lstatr, hex("00 01")).power_failure);

  CHECK(parsed<InputStatus>(reply::istatr, hex("00 01 00")).active ==
        std::vector<bool>{false, true, false});
  CHECK(parsed<OutputStatus>(reply::ostatr, hex("01")).active == std::vector<bool>{true});

  // 26-bit Wiegand card on reader 0: 26 bits in 4 bytes, first bit in the MSB.
  const auto raw = parsed<RawCard>(reply::raw, hex("00 01 1A 00 3D 98 1C C0"));
  CHECK(raw.reader == 0);
  CHECK(raw.format == 1);
  CHECK(raw.bit_count == 26);
  CHECK(raw.bits == hex("3D 98 1C C0"));

  const auto fmt = parsed<FormattedCard>(reply::fmt, hex("01 00 04 31 32 33 34"));
  CHECK(fmt.reader == 1);
  CHECK(fmt.text == "1234");

  const auto kp = parsed<Keypad>(reply::keypad, hex("00 05 31 32 7F 39 0D"));
  CHECK(kp.reader == 0);
  CHECK(kp.keys == "12*9#");

  const auto com = parsed<ComSettings>(reply::com, hex("05 80 25 00 00"));
  CHECK(com.address == 5);
  CHECK(com.baud == 9600u);

  const Bytes cc_data =
      hex("00 01 02 03 04 05 06 07  A0 A1 A2 A3 A4 A5 A6 A7 "
          "FD E5 D2 F4 28 EC 16 31 24 71 EA 3C 02 BD 77 96");
  const auto cc = parsed<ClientCryptogram>(reply::ccrypt, cc_data);
  CHECK(cc.client_uid == kUid);
  CHECK(cc.rnd_b == kRndB);
  CHECK(cc.cryptogram[0] == 0xFD);
  CHECK(cc.cryptogram[15] == 0x96);

  const auto rm =
      parsed<InitialRMac>(reply::rmac_i, hex("B2 A3 00 57 EB 98 BA 22 29 EC 1F 87 56 62 B5 24"));
  CHECK(rm.rmac[0] == 0xB2);
}

TEST_CASE("OSDP reply parsers reject malformed data with the reason", "[osdp]") {
  auto err = [](std::uint8_t code, const Bytes& d) {
    auto r = parse_reply(code, d);
    CHECK_FALSE(r.reply);
    return r.error;
  };
  CHECK(err(reply::ack, hex("00")) == "osdp_ACK: 1 data bytes, expected 0");
  CHECK(err(reply::busy, hex("00")) == "osdp_BUSY: 1 data bytes, expected 0");
  CHECK(err(reply::nak, {}) == "osdp_NAK: no reason code");
  CHECK(err(reply::pdid, hex("00 01 02 03 04 05 06 07 08 09 0A")) ==
        "osdp_PDID: 11 data bytes, expected 12");
  CHECK(err(reply::pdcap, hex("09 01")) ==
        "osdp_PDCAP: 2 data bytes, expected a non-zero multiple of 3");
  CHECK(err(reply::lstatr, hex("00")) == "osdp_LSTATR: 1 data bytes, expected 2");
  CHECK(err(reply::lstatr, hex("02 00")) ==
        "osdp_LSTATR: status bytes must be 0 or 1, got 0x02 0x00");
  CHECK(err(reply::istatr, {}) == "osdp_ISTATR: no status bytes");
  CHECK(err(reply::ostatr, hex("00 07")) == "osdp_OSTATR: status of point 1 is 0x07, not 0/1");
  CHECK(err(reply::raw, hex("00 01 1A")) == "osdp_RAW: 3 data bytes, need at least 4");
  CHECK(err(reply::raw, hex("00 01 1A 00 1E F3 03")) ==
        "osdp_RAW: 26 bits need 4 data bytes, got 3");
  CHECK(err(reply::raw, hex("00 01 00 00")) == "osdp_RAW: bit count is 0");
  CHECK(err(reply::fmt, hex("01 00 05 31 32")) == "osdp_FMT: character count 5 but 2 follow");
  CHECK(err(reply::fmt, hex("01 00 01 07")) == "osdp_FMT: character 0 is 0x07, not printable");
  CHECK(err(reply::keypad, hex("00 02 31")) == "osdp_KEYPAD: digit count 2 but 1 follow");
  CHECK(err(reply::keypad, hex("00 01 41")) == "osdp_KEYPAD: key 0 is 0x41, not a keypad key");
  CHECK(err(reply::com, hex("05 80 25 00")) == "osdp_COM: 4 data bytes, expected 5");
  CHECK(err(reply::ccrypt, Bytes(31, 0)) == "osdp_CCRYPT: 31 data bytes, expected 32");
  CHECK(err(reply::rmac_i, Bytes(17, 0)) == "osdp_RMAC_I: 17 data bytes, expected 16");
  CHECK(err(0x99, {}) == "unsupported reply code 0x99");
}

TEST_CASE("OSDP FrameReader cuts a serial stream into frames", "[osdp]") {
  const Bytes ack = reply_bytes(reply::ack, {}, 1, 1);
  const Bytes lstatr = reply_bytes(reply::lstatr, hex("01 00"), 1, 2);
  FrameReader reader;

  SECTION("two frames in one chunk") {
    auto out = reader.feed(cat({ack, lstatr}));
    REQUIRE(out.size() == 2);
    REQUIRE(out[0].frame);
    REQUIRE(out[1].frame);
    CHECK(out[0].frame->code == reply::ack);
    CHECK(out[1].frame->code == reply::lstatr);
    CHECK(out[1].frame->data == hex("01 00"));
    CHECK(reader.buffered() == 0);
  }
  SECTION("a frame split across chunks, one byte at a time") {
    std::vector<FrameResult> all;
    for (std::size_t i = 0; i < lstatr.size(); ++i) {
      auto out = reader.feed(ByteView(lstatr).subspan(i, 1));
      if (i + 1 < lstatr.size()) CHECK(out.empty());
      all.insert(all.end(), out.begin(), out.end());
    }
    REQUIRE(all.size() == 1);
    REQUIRE(all[0].frame);
    CHECK(all[0].frame->raw == lstatr);
  }
  SECTION("a frame split in the middle of the header and the rest with the next frame") {
    CHECK(reader.feed(ByteView(lstatr).first(3)).empty());
    auto out = reader.feed(cat({Bytes(lstatr.begin() + 3, lstatr.end()), ack}));
    REQUIRE(out.size() == 2);
    CHECK(out[0].frame->code == reply::lstatr);
    CHECK(out[1].frame->code == reply::ack);
  }
  SECTION("garbage and the 0xFF mark before SOM are skipped") {
    auto out = reader.feed(cat({hex("00 12 FF FF"), ack}));
    REQUIRE(out.size() == 1);
    REQUIRE(out[0].frame);
    CHECK(out[0].frame->code == reply::ack);
    CHECK(reader.skipped_bytes() == 4);
  }
  SECTION("a bad CRC is reported once and the next frame still arrives") {
    Bytes broken = lstatr;
    broken[6] ^= 0x01;
    auto out = reader.feed(cat({broken, ack}));
    REQUIRE(out.size() == 2);
    CHECK_FALSE(out[0].frame);
    CHECK(out[0].error.rfind("CRC mismatch", 0) == 0);
    REQUIRE(out[1].frame);
    CHECK(out[1].frame->code == reply::ack);
    CHECK(reader.bad_frames() == 1);
  }
  SECTION("a corrupted length does not swallow the next frame") {
    Bytes broken = lstatr;
    broken[2] = 0x0B;  // one more than the frame has: the candidate spans into the ACK
    auto out = reader.feed(cat({broken, ack}));
    REQUIRE(out.size() == 2);
    CHECK_FALSE(out[0].frame);
    REQUIRE(out[1].frame);
    CHECK(out[1].frame->code == reply::ack);
  }
  SECTION("an impossible length is rejected before waiting for bytes") {
    auto out = reader.feed(hex("53 81 FF FF 04"));
    REQUIRE(out.size() == 1);
    CHECK(out[0].error == "length field 65535 too large (allowed 8..1536)");
    CHECK(reader.buffered() == 0);  // the rest has no SOM: skipped
    CHECK(reader.skipped_bytes() == 5);
    out = reader.feed(ack);
    REQUIRE(out.size() == 1);
    CHECK(out[0].frame);
  }
  SECTION("a partial frame waits; reset() drops it") {
    CHECK(reader.feed(ByteView(lstatr).first(6)).empty());
    CHECK(reader.buffered() == 6);
    reader.reset();
    CHECK(reader.buffered() == 0);
    auto out = reader.feed(ack);
    REQUIRE(out.size() == 1);
    CHECK(out[0].frame);
  }
}

TEST_CASE("OSDP SC session keys, cryptograms and R-MAC-I match Annex E", "[osdp]") {
  const SessionKeys k = derive_session_keys(kScbkD, kRndA);
  CHECK(k.s_enc == arr<16>("BF 8D C2 A8 32 9A CB 8C 67 C6 D0 CD 9A 45 16 82"));
  CHECK(k.s_mac1 == arr<16>("5E 86 C6 76 60 3B DE E2 D8 BE AF E1 78 63 73 32"));
  CHECK(k.s_mac2 == arr<16>("6F DA 86 E8 57 77 7E 81 13 20 35 75 82 39 17 2E"));
  // Client (PD) cryptogram = AES(S-ENC, RND.A || RND.B); server (CP) = AES(S-ENC, RND.B || RND.A)
  CHECK(client_cryptogram(k, kRndA, kRndB) ==
        arr<16>("FD E5 D2 F4 28 EC 16 31 24 71 EA 3C 02 BD 77 96"));
  const Block server = server_cryptogram(k, kRndA, kRndB);
  CHECK(server == arr<16>("26 D3 35 6E 07 76 2D 26 28 01 FC 8E 66 65 A8 91"));
  CHECK(initial_rmac(k, server) == arr<16>("B2 A3 00 57 EB 98 BA 22 29 EC 1F 87 56 62 B5 24"));
}

TEST_CASE("OSDP SC MAC and data encryption match the NIST-derived vectors", "[osdp]") {
  const Key key = arr<16>("2b 7e 15 16 28 ae d2 a6 ab f7 15 88 09 cf 4f 3c");
  const Block iv = arr<16>("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f");
  const Bytes pt4 = hex(
      "6b c1 be e2 2e 40 9f 96 e9 3d 7e 11 73 93 17 2a ae 2d 8a 57 1e 03 ac 9c 9e b7 6f ac 45 af "
      "8e 51 30 c8 1c 46 a3 5c e4 11 e5 fb c1 19 1a 0a 52 ef f6 9f 24 45 df 4f 9b 17 ad 2b 41 7b "
      "e6 6c 37 10");
  const SessionKeys k{key, key, key};
  CHECK(compute_mac(k, iv, ByteView(pt4).first(16)) ==
        arr<16>("76 49 ab ac 81 19 b2 46 ce e9 8e 9b 12 e9 19 7d"));
  CHECK(compute_mac(k, iv, pt4) == arr<16>("3f f1 ca a1 68 1f ac 09 12 0e ca 30 75 86 e1 a7"));
  const Bytes pt15 = hex("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e");
  const Block ct15 = arr<16>("c5 31 1f 3d 23 d0 86 ea 86 f5 ee 7f 85 24 7b 40");
  CHECK(compute_mac(k, iv, pt15) == ct15);  // padded with 0x80

  // Data encryption uses IV = ~last MAC: pass the complement of the NIST IV.
  Block last_mac{};
  for (std::size_t i = 0; i < 16; ++i) last_mac[i] = static_cast<std::uint8_t>(~iv[i]);
  CHECK(encrypt_data(key, last_mac, pt15) == Bytes(ct15.begin(), ct15.end()));
  const Bytes pt16 = hex("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f");
  const Bytes ct16 = hex(
      "7d f7 6b 0c 1a b8 99 b3 3e 42 f0 47 b9 1b 54 6f e2 fe 5b d6 c1 df cd d1 91 24 f0 3e 1a 13 "
      "4d 3b");
  CHECK(encrypt_data(key, last_mac, pt16) == ct16);
  CHECK(encrypt_data(key, last_mac, {}) == hex("4c 08 22 0c 79 d9 19 10 22 dc 66 74 87 4c ea f8"));

  auto d = decrypt_data(key, last_mac, ct16);
  REQUIRE(d.plaintext);
  CHECK(*d.plaintext == pt16);
  d = decrypt_data(key, last_mac, Bytes(ct15.begin(), ct15.end()));
  REQUIRE(d.plaintext);
  CHECK(*d.plaintext == pt15);
  CHECK(decrypt_data(key, last_mac, ByteView(ct16).first(15)).error ==
        "encrypted data of 15 bytes is not a whole number of 16-byte blocks");
  // A block without the 0x80 marker (AES-CBC of 16 zero bytes): rejected.
  CHECK(decrypt_data(key, last_mac, hex("66 e9 4b d4 ef 8a 2c 3b 88 4c fa 59 ca 34 2b 2e")).error ==
        "decrypted data has no 0x80 padding marker (wrong key or IV)");
  CHECK(equal_ct(pt16, pt16));
  CHECK_FALSE(equal_ct(pt16, pt15));
}

namespace {

// A CP and a simulated PD that completed the Annex E handshake over encoded frames.
struct Session {
  SecureChannel cp{Key{}, true};
  SecureChannel pd{Key{}, true, SecureChannel::Role::peripheral};

  Session() {
    auto chlng = cp.start(0x01, 1, kRndA);
    REQUIRE(chlng.error.empty());
    CHECK(cp.state() == SecureChannel::State::awaiting_ccrypt);
    auto ccrypt = pd.answer_chlng(decoded(chlng.bytes), kUid, kRndB);
    REQUIRE(ccrypt.error.empty());
    REQUIRE(cp.accept_ccrypt(decoded(ccrypt.bytes)) == "");
    auto scr = cp.scrypt(0x01, 2);
    REQUIRE(scr.error.empty());
    auto rmac = pd.answer_scrypt(decoded(scr.bytes));
    REQUIRE(rmac.error.empty());
    REQUIRE(cp.accept_rmac_i(decoded(rmac.bytes)) == "");
    REQUIRE(cp.active());
    REQUIRE(pd.active());
  }
};

}  // namespace

TEST_CASE("OSDP SC handshake frames carry the Annex E values", "[osdp]") {
  SecureChannel cp(Key{}, true);
  auto chlng = cp.start(0x01, 1, kRndA);
  REQUIRE(chlng.error.empty());
  const Frame f = decoded(chlng.bytes);
  REQUIRE(f.scb);
  CHECK(f.scb->type == scs::chlng);
  CHECK(f.scb->data == hex("00"));  // 0 = SCBK-D
  CHECK(f.code == cmd::chlng);
  CHECK(f.data == Bytes(kRndA.begin(), kRndA.end()));

  // The PD's osdp_CCRYPT built by hand from Annex E values.
  const Bytes data =
      hex("00 01 02 03 04 05 06 07  A0 A1 A2 A3 A4 A5 A6 A7 "
          "FD E5 D2 F4 28 EC 16 31 24 71 EA 3C 02 BD 77 96");
  auto ccrypt = encode_reply(0x01, 1, reply::ccrypt, data,
                             {.crc = true, .scb = SecurityBlock{scs::ccrypt, {0x00}}});
  REQUIRE(cp.accept_ccrypt(decoded(ccrypt.bytes)) == "");
  auto scr = cp.scrypt(0x01, 2);
  REQUIRE(scr.error.empty());
  const Frame s = decoded(scr.bytes);
  CHECK(s.code == cmd::scrypt);
  CHECK(s.data == hex("26 D3 35 6E 07 76 2D 26 28 01 FC 8E 66 65 A8 91"));
  auto rmac =
      encode_reply(0x01, 2, reply::rmac_i, hex("B2 A3 00 57 EB 98 BA 22 29 EC 1F 87 56 62 B5 24"),
                   {.crc = true, .scb = SecurityBlock{scs::rmac_i, {0x01}}});
  CHECK(cp.accept_rmac_i(decoded(rmac.bytes)) == "");
  CHECK(cp.active());
}

TEST_CASE("OSDP SC refuses a PD with another key", "[osdp]") {
  SecureChannel cp(kScbkD, false);  // expects the installed key ...
  Key other = kScbkD;
  other[0] ^= 0xFF;
  SecureChannel pd(other, false, SecureChannel::Role::peripheral);  // ... the PD has another
  auto chlng = cp.start(0x01, 1, kRndA);
  auto ccrypt = pd.answer_chlng(decoded(chlng.bytes), kUid, kRndB);
  REQUIRE(ccrypt.error.empty());
  CHECK(cp.accept_ccrypt(decoded(ccrypt.bytes)) ==
        "client cryptogram mismatch: the PD uses another key than the installed SCBK");
  CHECK(cp.state() == SecureChannel::State::failed);
  CHECK(cp.keys().s_enc == Key{});  // wiped
  CHECK_FALSE(cp.scrypt(0x01, 2).error.empty());
  CHECK_FALSE(cp.wrap(0x01, 2, poll()).error.empty());

  SecureChannel cp2(kScbkD, true);
  cp2.start(0x01, 1, kRndA);
  auto nak = encode_reply(0x01, 1, reply::nak, hex("05"));
  CHECK(cp2.accept_ccrypt(decoded(nak.bytes)) ==
        "osdp_CHLNG refused: NAK security block not supported");
}

TEST_CASE("OSDP SC wraps commands and opens replies, MAC-chained", "[osdp]") {
  Session s;
  // Command with data: SCB 0x17, data encrypted, MAC appended.
  const auto strike = output({{0, 5, 30}});
  auto c1 = s.cp.wrap(0x01, 1, strike);
  REQUIRE(c1.error.empty());
  const Frame f1 = decoded(c1.bytes);
  REQUIRE(f1.scb);
  CHECK(f1.scb->type == scs::cmd_enc);
  CHECK(f1.mac);
  CHECK(f1.data.size() == 16);    // 4 bytes + 0x80 padding -> one block
  CHECK(f1.data != strike.data);  // not in clear
  auto o1 = s.pd.unwrap(f1);
  INFO(o1.error);
  REQUIRE(o1.message);
  CHECK(o1.message->code == cmd::out);
  CHECK(o1.message->data == strike.data);

  // Reply without data: SCB 0x16.
  auto r1 = s.pd.wrap(0x01, 1, reply::ack, {});
  REQUIRE(r1.error.empty());
  const Frame fr1 = decoded(r1.bytes);
  CHECK(fr1.from_pd);
  CHECK(fr1.scb->type == scs::reply_mac);
  auto or1 = s.cp.unwrap(fr1);
  REQUIRE(or1.message);
  CHECK(or1.message->code == reply::ack);
  CHECK(or1.message->data.empty());

  // POLL (SCB 0x15), answered by an encrypted card read (SCB 0x18); the chain continues.
  auto c2 = s.cp.wrap(0x01, 2, poll());
  REQUIRE(c2.error.empty());
  CHECK(decoded(c2.bytes).scb->type == scs::cmd_mac);
  REQUIRE(s.pd.unwrap(decoded(c2.bytes)).message);
  const Bytes card = hex("00 01 1A 00 3D 98 1C C0");
  auto r2 = s.pd.wrap(0x01, 2, reply::raw, card);
  const Frame fr2 = decoded(r2.bytes);
  CHECK(fr2.scb->type == scs::reply_enc);
  auto or2 = s.cp.unwrap(fr2);
  REQUIRE(or2.message);
  CHECK(or2.message->data == card);
  CHECK(parsed<RawCard>(or2.message->code, or2.message->data).bit_count == 26);
}

TEST_CASE("OSDP SC rejects a bad MAC, a replay and plaintext, and drops the session", "[osdp]") {
  SECTION("a flipped MAC byte") {
    Session s;
    auto c = s.cp.wrap(0x01, 1, poll());
    REQUIRE(s.pd.unwrap(decoded(c.bytes)).message);
    auto r = s.pd.wrap(0x01, 1, reply::lstatr, hex("01 00"));
    Bytes tampered = r.bytes;
    tampered[tampered.size() - 3] ^= 0x01;  // last MAC byte
    // Recompute the CRC so that only the MAC is wrong.
    tampered.resize(tampered.size() - 2);
    const auto crc = crc16(tampered);
    tampered.push_back(static_cast<std::uint8_t>(crc & 0xFF));
    tampered.push_back(static_cast<std::uint8_t>(crc >> 8));
    auto o = s.cp.unwrap(decoded(tampered));
    CHECK_FALSE(o.message);
    CHECK(o.error == "MAC mismatch on osdp_LSTATR");
    CHECK(s.cp.state() == SecureChannel::State::failed);
    CHECK(s.cp.last_error() == o.error);
    CHECK(s.cp.unwrap(decoded(r.bytes)).error == "Secure Channel not active");
  }
  SECTION("a replayed reply") {
    Session s;
    auto c = s.cp.wrap(0x01, 1, poll());
    REQUIRE(s.pd.unwrap(decoded(c.bytes)).message);
    auto r = s.pd.wrap(0x01, 1, reply::ack, {});
    REQUIRE(s.cp.unwrap(decoded(r.bytes)).message);
    auto c2 = s.cp.wrap(0x01, 2, poll());
    REQUIRE(c2.error.empty());
    // The old ACK again: its MAC was chained on the previous command.
    CHECK(s.cp.unwrap(decoded(r.bytes)).error == "MAC mismatch on osdp_ACK");
  }
  SECTION("a plaintext reply while active") {
    Session s;
    s.cp.wrap(0x01, 1, poll());
    auto plain = encode_reply(0x01, 1, reply::raw, hex("00 01 1A 00 3D 98 1C C0"));
    CHECK(s.cp.unwrap(decoded(plain.bytes)).error ==
          "plaintext osdp_RAW while the Secure Channel is active");
    CHECK(s.cp.state() == SecureChannel::State::failed);
  }
  SECTION("a plaintext NAK names its reason") {
    Session s;
    s.cp.wrap(0x01, 1, poll());
    auto nak = encode_reply(0x01, 1, reply::nak, hex("06"));
    CHECK(s.cp.unwrap(decoded(nak.bytes)).error ==
          "plaintext osdp_NAK while the Secure Channel is active (NAK: communication security "
          "conditions not met (encryption required))");
  }
  SECTION("osdp_BUSY, unsecured by the standard, passes without data") {
    Session s;
    s.cp.wrap(0x01, 1, poll());
    auto busy = encode_reply(0x01, 0, reply::busy, {});
    auto o = s.cp.unwrap(decoded(busy.bytes));
    REQUIRE(o.message);
    CHECK_FALSE(o.message->secured);
    CHECK(s.cp.active());
  }
  SECTION("encrypted data that was altered fails the MAC before decryption") {
    Session s;
    auto c = s.cp.wrap(0x01, 1, keyset(kScbkD));
    Bytes altered = c.bytes;
    altered[10] ^= 0x80;  // inside the encrypted data
    altered.resize(altered.size() - 2);
    const auto crc = crc16(altered);
    altered.push_back(static_cast<std::uint8_t>(crc & 0xFF));
    altered.push_back(static_cast<std::uint8_t>(crc >> 8));
    CHECK(s.pd.unwrap(decoded(altered)).error == "MAC mismatch on osdp_KEYSET");
  }
}

TEST_CASE("OSDP replies become access events without card numbers or PINs", "[osdp]") {
  using namespace anju::drivers::access;
  using anju::edge::EventKind;
  PseudonymKey key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(i);

  // 26-bit Wiegand data in osdp_RAW: facility 123, card 12345 (same card as in test_wiegand).
  auto card = parse_reply(reply::raw, hex("00 01 1A 00 3D 98 1C C0"));
  REQUIRE(card.reply);
  auto evs = events_from_reply(*card.reply, key);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].kind == EventKind::card_read);
  CHECK(evs[0].source == "osdp");
  CHECK(evs[0].attrs["format"] == "h10301_26");
  CHECK(evs[0].attrs["facility"] == 123);
  CHECK(evs[0].attrs["credential"] == "e68725096192b06a2914f5c0682cbc28");
  CHECK(anju::edge::encode(evs[0]).find("12345") == std::string::npos);

  // The same bits with a flipped parity bit: reader_fault.
  auto bad_card = parse_reply(reply::raw, hex("00 01 1A 00 BD 98 1C C0"));
  evs = events_from_reply(*bad_card.reply, key);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].kind == EventKind::reader_fault);

  auto keys = parse_reply(reply::keypad, hex("01 05 31 32 7F 39 0D"));
  evs = events_from_reply(*keys.reply, key);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].kind == EventKind::keypad_entry);
  CHECK(evs[0].attrs["digits"] == 5);
  CHECK(evs[0].attrs["reader"] == 1);
  CHECK(anju::edge::encode(evs[0]).find("12*9#") == std::string::npos);

  evs = events_from_reply(*parse_reply(reply::lstatr, hex("01 00")).reply, key);
  REQUIRE(evs.size() == 2);
  CHECK(evs[0].kind == EventKind::tamper);
  CHECK(evs[0].active == true);
  CHECK(evs[0].severity == 2);
  CHECK(evs[1].kind == EventKind::equipment_fault);
  CHECK(evs[1].active == false);

  evs = events_from_reply(*parse_reply(reply::nak, hex("06")).reply, key);
  REQUIRE(evs.size() == 1);
  CHECK(evs[0].kind == EventKind::reader_fault);
  CHECK(evs[0].attrs["nak"] == 6);

  CHECK(events_from_reply(*parse_reply(reply::ack, {}).reply, key).empty());

  const auto sf = fault_event("osdp", "MAC mismatch on osdp_RAW", true);
  CHECK(sf.kind == EventKind::security_fault);
  CHECK(sf.active == true);
  CHECK(sf.attrs["reason"] == "MAC mismatch on osdp_RAW");
  CHECK(fault_event("osdp", "CRC mismatch", false).kind == EventKind::reader_fault);
}
