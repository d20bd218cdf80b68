// Modbus register maps and frame parsing: pure functions, no I/O, no libmodbus. A ModbusDriver
// (not written yet) polls with libmodbus and hands the registers it read to decode(); the frame
// parsers serve a simulated device in tests and the fuzz target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "anju/edge/event.hpp"

namespace anju::drivers::modbus {

// ---- register maps
// -------------------------------------------------------------------------------
enum class DataType { boolean, int16, uint16, int32, uint32, float32 };
// Byte order of a value, A being its most significant byte. For 32-bit values over two
// registers: ABCD = big-endian (reg0 = AB, reg1 = CD), CDAB = word-swapped (reg0 = CD, reg1 = AB),
// BADC = byte-swapped (reg0 = BA, reg1 = DC), DCBA = little-endian (reg0 = DC, reg1 = BA).
// For 16-bit values only the byte swap counts: ABCD/CDAB read AB, BADC/DCBA read BA.
enum class WordOrder { ABCD, CDAB, BADC, DCBA };

std::string_view to_string(DataType t);
std::optional<DataType> data_type_from_string(std::string_view s);  // "bool", "int16", ...
std::string_view to_string(WordOrder o);
std::optional<WordOrder> word_order_from_string(std::string_view s);  // "ABCD", ...
// Registers (or bits) a type occupies: bool 1, 16-bit 1, 32-bit 2.
std::uint16_t register_count(DataType t);

struct RegisterEntry {
  std::string name{};        // value name, e.g. "water_level"; default: the kind's name
  std::uint8_t unit_id = 1;  // 1..247, or 255 (Modbus TCP "no unit id")
  // 1 read coils, 2 read discrete inputs (type bool only), 3 read holding registers,
  // 4 read input registers (any type; bool = a bit of the register, see bit).
  std::uint8_t function = 3;
  std::uint32_t address = 0;  // 0-based protocol address (register 40001 is address 0)
  std::uint16_t count = 1;    // must equal register_count(type)
  DataType type = DataType::uint16;
  WordOrder order = WordOrder::ABCD;
  double scale = 1;  // value = raw * scale + offset
  double offset = 0;
  std::string unit{};  // e.g. "m", "kPa", "C"
  edge::EventKind kind = edge::EventKind::measurement;
  // Binary kinds: active = (bit set ? raw bit `bit` : raw != 0) XOR invert. bit is only for
  // integer types on functions 3/4 (0..15 for 16-bit, 0..31 for 32-bit).
  std::optional<std::uint8_t> bit{};
  bool invert = false;
  bool operator==(const RegisterEntry&) const = default;
};

// Every problem, each naming the field: "count: int32 needs 2 registers, not 1",
// "address: 65535 + count 2 goes past 65535", "function: 1 (read coils) reads bits; type must be
// bool". Empty when the entry is usable.
std::vector<std::string> validate(const RegisterEntry& e);

struct Decoded {
  std::optional<edge::Measurement> value{};  // numeric kinds
  std::optional<bool> active{};              // binary kinds
  std::string error{};                       // empty when one of the above is set
};
// `words` are the registers read (functions 3/4) or the bits read, one per element, 0 or 1
// (functions 1/2), in address order; their number must equal entry.count.
// The words as a view into a larger read (the driver decodes each entry of a group in place).
Decoded decode_view(const RegisterEntry& entry, std::span<const std::uint16_t> words);
Decoded decode(const RegisterEntry& entry, const std::vector<std::uint16_t>& words);

// Modbus exception codes 1..11 ("Illegal Data Address"); other codes: "unknown exception code N".
std::string exception_text(std::uint8_t code);

// ---- frames
// --------------------------------------------------------------------------------------
// CRC-16/MODBUS: reflected polynomial 0xA001, initial value 0xFFFF; sent low byte first.
std::uint16_t crc16_modbus(std::span<const std::uint8_t> bytes);

inline constexpr std::size_t kMaxRtuFrameBytes = 256;  // address + PDU (max 253) + CRC
inline constexpr std::size_t kMaxPduBytes = 253;       // function + data

struct Pdu {
  std::uint8_t function = 0;  // without the exception bit
  bool exception = false;     // function code had bit 7 set
  std::uint8_t exception_code = 0;
  std::vector<std::uint8_t> data{};  // bytes after the function code (empty for an exception)
};

struct RtuFrame {
  std::uint8_t address = 0;
  Pdu pdu;
  std::uint16_t crc = 0;
};
struct RtuResult {
  std::optional<RtuFrame> frame{};
  std::string error{};  // "CRC mismatch: frame 0x1234, computed 0x4b37"
};
// One complete RTU frame (address, function, data, CRC). Address 0 is broadcast, 1..247 units;
// 248..255 are rejected.
RtuResult parse_rtu(std::span<const std::uint8_t> bytes);
// Address, function, data and the CRC appended (low byte first).
std::vector<std::uint8_t> encode_rtu(std::uint8_t address, std::uint8_t function,
                                     std::span<const std::uint8_t> data);

struct MbapHeader {
  std::uint16_t transaction_id = 0;
  std::uint16_t protocol_id = 0;  // always 0 for Modbus
  std::uint16_t length = 0;       // bytes following the length field: unit id + PDU
  std::uint8_t unit_id = 0;
};
struct TcpResult {
  std::optional<MbapHeader> header{};
  std::optional<Pdu> pdu{};  // set when the whole ADU is there and valid
  // Bytes the whole ADU needs (7 + length - 1) once the header is known; a stream reader waits
  // for that many when `incomplete`.
  std::size_t adu_bytes = 0;
  bool incomplete = false;  // not an error: more bytes are needed
  std::string error{};
};
// A Modbus TCP ADU: the 7-byte MBAP header then the PDU. Extra bytes after the ADU are left for
// the next one (adu_bytes says where it ends).
TcpResult parse_tcp(std::span<const std::uint8_t> bytes);

struct RegistersResult {
  std::vector<std::uint16_t> words{};  // registers, or bits as 0/1
  std::string error{};
};
// Data of a normal response to a read request (functions 1..4): byte count, then packed bits
// (1/2) or big-endian registers (3/4); `count` is the number of bits or registers asked for.
RegistersResult parse_read_response(const Pdu& pdu, std::uint16_t count);

}  // namespace anju::drivers::modbus
