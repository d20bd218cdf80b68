// Unit tests of the pure Modbus register maps and frame parsers
// (drivers/sensors/src/modbus_parser.cpp).
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "anju/drivers/modbus_map.hpp"

using namespace anju::drivers::modbus;
using anju::edge::EventKind;

namespace {

RegisterEntry float_entry(WordOrder order) {
  RegisterEntry e;
  e.name = "level";
  e.function = 3;
  e.address = 100;
  e.count = 2;
  e.type = DataType::float32;
  e.order = order;
  e.unit = "m";
  e.kind = EventKind::water_level;
  return e;
}

bool has_error(const std::vector<std::string>& errors, const std::string& part) {
  for (const auto& e : errors)
    if (e.find(part) != std::string::npos) return true;
  return false;
}

std::vector<std::uint8_t> bytes(std::initializer_list<int> l) {
  std::vector<std::uint8_t> v;
  for (int b : l) v.push_back(static_cast<std::uint8_t>(b));
  return v;
}

}  // namespace

TEST_CASE("modbus: float32 in all four word orders decodes 123.456", "[modbus]") {
  // 123.456f = 0x42F6E979: A=42 B=F6 C=E9 D=79.
  const std::vector<std::pair<WordOrder, std::vector<std::uint16_t>>> cases = {
      {WordOrder::ABCD, {0x42F6, 0xE979}},
      {WordOrder::CDAB, {0xE979, 0x42F6}},
      {WordOrder::BADC, {0xF642, 0x79E9}},
      {WordOrder::DCBA, {0x79E9, 0xF642}},
  };
  for (const auto& c : cases) {
    INFO(to_string(c.first));
    const auto d = decode(float_entry(c.first), c.second);
    REQUIRE(d.error.empty());
    REQUIRE(d.value.has_value());
    CHECK(d.value->value == Approx(123.456).epsilon(1e-6));
    CHECK(d.value->name == "level");
    CHECK(d.value->unit == "m");
    CHECK_FALSE(d.active.has_value());
  }
}

TEST_CASE("modbus: integer types, signs, word orders, scale and offset", "[modbus]") {
  RegisterEntry e;
  e.type = DataType::int16;
  e.kind = EventKind::temperature;
  e.scale = 0.1;
  e.unit = "C";
  auto d = decode(e, {0xFF38});  // -200
  REQUIRE(d.value);
  CHECK(d.value->value == Approx(-20.0));
  CHECK(d.value->name == "temperature");  // default name: the kind's

  e.type = DataType::uint16;
  e.scale = 1;
  e.offset = -40;
  d = decode(e, {0xFF38});
  REQUIRE(d.value);
  CHECK(d.value->value == Approx(65336 - 40));

  e.offset = 0;
  e.order = WordOrder::BADC;  // byte swap applies to 16-bit values
  d = decode(e, {0x3412});
  REQUIRE(d.value);
  CHECK(d.value->value == 0x1234);
  e.order = WordOrder::CDAB;  // word swap alone does not
  d = decode(e, {0x1234});
  REQUIRE(d.value);
  CHECK(d.value->value == 0x1234);

  e.type = DataType::int32;
  e.count = 2;
  e.order = WordOrder::ABCD;
  d = decode(e, {0xFFFF, 0xFFFE});
  REQUIRE(d.value);
  CHECK(d.value->value == -2);
  e.order = WordOrder::CDAB;
  d = decode(e, {0xFFFE, 0xFFFF});
  REQUIRE(d.value);
  CHECK(d.value->value == -2);

  e.type = DataType::uint32;
  e.order = WordOrder::DCBA;  // 0x12345678 little-endian: reg0 = 7856, reg1 = 3412
  d = decode(e, {0x7856, 0x3412});
  REQUIRE(d.value);
  CHECK(d.value->value == 0x12345678);
  e.order = WordOrder::ABCD;
  d = decode(e, {0xFFFF, 0xFFFF});
  REQUIRE(d.value);
  CHECK(d.value->value == 4294967295.0);
}

TEST_CASE("modbus: binary kinds: coils, register bits, invert", "[modbus]") {
  RegisterEntry coil;
  coil.function = 2;
  coil.type = DataType::boolean;
  coil.kind = EventKind::equipment_alarm;
  CHECK(validate(coil).empty());
  auto d = decode(coil, {1});
  REQUIRE(d.active);
  CHECK(*d.active);
  CHECK_FALSE(d.value);
  d = decode(coil, {0});
  REQUIRE(d.active);
  CHECK_FALSE(*d.active);
  d = decode(coil, {2});
  CHECK(d.error == "bit value must be 0 or 1, got 2");
  coil.invert = true;
  d = decode(coil, {1});
  REQUIRE(d.active);
  CHECK_FALSE(*d.active);

  RegisterEntry status;
  status.function = 3;
  status.type = DataType::uint16;
  status.kind = EventKind::equipment_fault;
  status.bit = 3;
  CHECK(validate(status).empty());
  d = decode(status, {0x0008});
  REQUIRE(d.active);
  CHECK(*d.active);
  d = decode(status, {0xFFF7});
  REQUIRE(d.active);
  CHECK_FALSE(*d.active);
  status.bit.reset();  // no bit: any non-zero value is active
  d = decode(status, {0x0100});
  REQUIRE(d.active);
  CHECK(*d.active);

  RegisterEntry wide = status;
  wide.type = DataType::uint32;
  wide.count = 2;
  wide.bit = 17;
  CHECK(validate(wide).empty());
  d = decode(wide, {0x0002, 0x0000});
  REQUIRE(d.active);
  CHECK(*d.active);
}

TEST_CASE("modbus: decode errors", "[modbus]") {
  auto e = float_entry(WordOrder::ABCD);
  auto d = decode(e, {0x42F6});
  CHECK(d.error == "expected 2 registers for float32, got 1");
  CHECK_FALSE(d.value);
  d = decode(e, {0x7FC0, 0x0000});  // NaN
  CHECK(d.error.find("float32 value is not finite") == 0);
  d = decode(e, {0x7F80, 0x0000});  // +inf
  CHECK_FALSE(d.error.empty());
  RegisterEntry c;
  c.function = 1;
  c.type = DataType::boolean;
  c.kind = EventKind::equipment_alarm;
  d = decode(c, {});
  CHECK(d.error == "expected 1 bit for bool, got 0");
  e.scale = 1e300;
  d = decode(e, {0x7F7F, 0xFFFF});  // FLT_MAX * 1e300 overflows
  CHECK(d.error == "value out of range after scale/offset");
}

TEST_CASE("modbus: validate names every problem", "[modbus]") {
  CHECK(validate(float_entry(WordOrder::CDAB)).empty());

  RegisterEntry e = float_entry(WordOrder::ABCD);
  e.count = 1;
  CHECK(validate(e) == std::vector<std::string>{"count: float32 needs 2 registers, not 1"});

  e = float_entry(WordOrder::ABCD);
  e.address = 65535;
  CHECK(validate(e) == std::vector<std::string>{"address: 65535 + count 2 goes past 65535"});
  e.address = 65534;
  CHECK(validate(e).empty());
  e.address = 70000;
  CHECK(has_error(validate(e), "address: 70000 is outside 0..65535"));

  e = float_entry(WordOrder::ABCD);
  e.function = 1;
  CHECK(has_error(validate(e),
                  "function: 1 (read coils) reads bits; type must be bool, not float32"));
  e.function = 6;
  CHECK(has_error(validate(e), "function: 6 is not a read function (1, 2, 3 or 4)"));

  e = float_entry(WordOrder::ABCD);
  e.unit_id = 0;
  CHECK(has_error(validate(e), "unit_id: 0 is not a unit"));
  e.unit_id = 248;
  CHECK(has_error(validate(e), "unit_id: 248"));
  e.unit_id = 255;
  CHECK(validate(e).empty());

  e = float_entry(WordOrder::ABCD);
  e.scale = 0;
  CHECK(has_error(validate(e), "scale: must be finite and not 0"));

  RegisterEntry b;
  b.function = 1;
  b.type = DataType::boolean;
  b.kind = EventKind::temperature;
  CHECK(has_error(validate(b), "kind: type bool needs a binary kind, not temperature"));
  b.kind = EventKind::equipment_alarm;
  b.count = 2;
  CHECK(has_error(validate(b), "count: bool needs 1 bit, not 2"));

  RegisterEntry bit;
  bit.type = DataType::uint16;
  bit.kind = EventKind::equipment_fault;
  bit.bit = 16;
  CHECK(has_error(validate(bit), "bit: 16 is outside 0..15 for uint16"));
  bit.kind = EventKind::pressure;
  bit.bit = 1;
  CHECK(has_error(validate(bit), "bit: only for binary kinds, not pressure"));
  bit.invert = true;
  CHECK(has_error(validate(bit), "invert: only for binary kinds"));
  bit = RegisterEntry{};
  bit.kind = EventKind::equipment_alarm;
  bit.unit = "V";
  CHECK(has_error(validate(bit), "unit: a binary kind has no unit"));
}

TEST_CASE("modbus: names of types and orders round-trip", "[modbus]") {
  for (auto t : {DataType::boolean, DataType::int16, DataType::uint16, DataType::int32,
                 DataType::uint32, DataType::float32})
    CHECK(data_type_from_string(to_string(t)) == t);
  for (auto o : {WordOrder::ABCD, WordOrder::CDAB, WordOrder::BADC, WordOrder::DCBA})
    CHECK(word_order_from_string(to_string(o)) == o);
  CHECK_FALSE(data_type_from_string("int64"));
  CHECK_FALSE(word_order_from_string("abcd"));
  CHECK(register_count(DataType::float32) == 2);
  CHECK(register_count(DataType::boolean) == 1);
}

TEST_CASE("modbus: exception texts", "[modbus]") {
  CHECK(exception_text(1).rfind("Illegal Function", 0) == 0);
  CHECK(exception_text(2).rfind("Illegal Data Address", 0) == 0);
  CHECK(exception_text(3).rfind("Illegal Data Value", 0) == 0);
  CHECK(exception_text(4).rfind("Server Device Failure", 0) == 0);
  CHECK(exception_text(5).rfind("Acknowledge", 0) == 0);
  CHECK(exception_text(6).rfind("Server Device Busy", 0) == 0);
  CHECK(exception_text(7).rfind("Negative Acknowledge", 0) == 0);
  CHECK(exception_text(8).rfind("Memory Parity Error", 0) == 0);
  CHECK(exception_text(9).find("not assigned") != std::string::npos);
  CHECK(exception_text(10).rfind("Gateway Path Unavailable", 0) == 0);
  CHECK(exception_text(11).rfind("Gateway Target Device Failed to Respond", 0) == 0);
  CHECK(exception_text(0) == "unknown exception code 0");
  CHECK(exception_text(12) == "unknown exception code 12");
}

TEST_CASE("modbus: CRC-16/MODBUS", "[modbus]") {
  const std::string check = "123456789";
  const std::vector<std::uint8_t> v(check.begin(), check.end());
  CHECK(crc16_modbus(v) == 0x4B37);
  CHECK(crc16_modbus({}) == 0xFFFF);
  // The textbook request: read 10 holding registers from address 0 of unit 1.
  const auto frame = encode_rtu(1, 3, bytes({0x00, 0x00, 0x00, 0x0A}));
  CHECK(frame == bytes({0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD}));
}

TEST_CASE("modbus: RTU frames", "[modbus]") {
  // Response of unit 1 with two registers 10 and 20.
  const auto resp = encode_rtu(1, 3, bytes({0x04, 0x00, 0x0A, 0x00, 0x14}));
  auto r = parse_rtu(resp);
  REQUIRE(r.error.empty());
  REQUIRE(r.frame);
  CHECK(r.frame->address == 1);
  CHECK(r.frame->pdu.function == 3);
  CHECK_FALSE(r.frame->pdu.exception);
  CHECK(r.frame->pdu.data == bytes({0x04, 0x00, 0x0A, 0x00, 0x14}));
  auto regs = parse_read_response(r.frame->pdu, 2);
  REQUIRE(regs.error.empty());
  CHECK(regs.words == std::vector<std::uint16_t>{10, 20});

  auto bad = resp;
  bad[3] ^= 0x01;
  r = parse_rtu(bad);
  CHECK_FALSE(r.frame);
  CHECK(r.error.rfind("CRC mismatch: frame 0x", 0) == 0);

  r = parse_rtu(bytes({0x01, 0x03, 0xFF}));
  CHECK(r.error == "RTU frame of 3 bytes is too short (address, function, CRC: at least 4)");
  r = parse_rtu(std::vector<std::uint8_t>(257, 0));
  CHECK(r.error == "RTU frame of 257 bytes is too long (max 256)");
  r = parse_rtu(encode_rtu(248, 3, bytes({0x00})));
  CHECK(r.error == "address 248 is reserved (0 broadcast, 1..247 units)");
  r = parse_rtu(encode_rtu(1, 0, bytes({})));
  CHECK(r.error == "function code 0 is not valid");

  // Exception response: function | 0x80, one code byte.
  r = parse_rtu(encode_rtu(17, 0x83, bytes({0x02})));
  REQUIRE(r.frame);
  CHECK(r.frame->address == 17);
  CHECK(r.frame->pdu.exception);
  CHECK(r.frame->pdu.function == 3);
  CHECK(r.frame->pdu.exception_code == 2);
  regs = parse_read_response(r.frame->pdu, 2);
  CHECK(regs.error.rfind("exception 2: Illegal Data Address", 0) == 0);
  r = parse_rtu(encode_rtu(17, 0x83, bytes({0x02, 0x00})));
  CHECK(r.error == "exception response must have exactly one byte after the function code, has 2");

  // Broadcast is a valid address for a frame.
  r = parse_rtu(encode_rtu(0, 6, bytes({0x00, 0x01, 0x00, 0x03})));
  REQUIRE(r.frame);
  CHECK(r.frame->address == 0);
}

TEST_CASE("modbus: read responses: packed bits and bad byte counts", "[modbus]") {
  Pdu p;
  p.function = 1;
  p.data = bytes({0x02, 0xCD, 0x01});  // 10 coils: 1011 0011 1 0 (LSB first)
  auto r = parse_read_response(p, 10);
  REQUIRE(r.error.empty());
  CHECK(r.words == std::vector<std::uint16_t>{1, 0, 1, 1, 0, 0, 1, 1, 1, 0});
  r = parse_read_response(p, 17);
  CHECK(r.error == "byte count 2 does not fit 17 bits (expected 3)");
  p.data = bytes({0x03, 0xCD});
  r = parse_read_response(p, 10);
  CHECK(r.error == "byte count 3 but 1 data bytes");
  p.data.clear();
  r = parse_read_response(p, 10);
  CHECK(r.error == "response has no byte count");
  p.function = 6;
  p.data = bytes({0x00});
  r = parse_read_response(p, 1);
  CHECK(r.error == "function 6 is not a read function");
  p.function = 4;
  p.data = bytes({0x02, 0x12, 0x34});
  r = parse_read_response(p, 2);
  CHECK(r.error == "byte count 2 does not fit 2 registers (expected 4)");
}

TEST_CASE("modbus: Modbus TCP MBAP header", "[modbus]") {
  // Transaction 1, protocol 0, length 6, unit 1, read 10 holding registers from 0.
  auto adu = bytes({0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x0A});
  auto r = parse_tcp(adu);
  REQUIRE(r.error.empty());
  REQUIRE(r.header);
  REQUIRE(r.pdu);
  CHECK(r.header->transaction_id == 1);
  CHECK(r.header->protocol_id == 0);
  CHECK(r.header->length == 6);
  CHECK(r.header->unit_id == 1);
  CHECK(r.adu_bytes == 12);
  CHECK(r.pdu->function == 3);
  CHECK(r.pdu->data == bytes({0x00, 0x00, 0x00, 0x0A}));

  // Two ADUs back to back: the first ends at adu_bytes.
  auto two = adu;
  two.insert(two.end(), adu.begin(), adu.end());
  r = parse_tcp(two);
  REQUIRE(r.pdu);
  CHECK(r.adu_bytes == 12);

  // Incomplete: not an error.
  r = parse_tcp(std::span(adu).first(5));
  CHECK(r.incomplete);
  CHECK(r.error.empty());
  CHECK_FALSE(r.header);
  r = parse_tcp(std::span(adu).first(10));
  CHECK(r.incomplete);
  REQUIRE(r.header);
  CHECK(r.adu_bytes == 12);
  CHECK_FALSE(r.pdu);

  auto bad = adu;
  bad[3] = 1;
  r = parse_tcp(bad);
  CHECK(r.error == "MBAP protocol id 1 is not 0 (Modbus)");
  bad = adu;
  bad[5] = 1;
  r = parse_tcp(bad);
  CHECK(r.error == "MBAP length 1 is too small (unit id + function: 2)");
  bad[4] = 0x01;
  bad[5] = 0x00;
  r = parse_tcp(bad);
  CHECK(r.error == "MBAP length 256 is too large (max 254)");
  r = parse_tcp(bytes({0x12, 0x34, 0x00, 0x00, 0x00, 0x03, 0xFF, 0x84, 0x0B}));
  REQUIRE(r.pdu);
  CHECK(r.header->transaction_id == 0x1234);
  CHECK(r.header->unit_id == 255);
  CHECK(r.pdu->exception);
  CHECK(r.pdu->function == 4);
  CHECK(r.pdu->exception_code == 11);
}
