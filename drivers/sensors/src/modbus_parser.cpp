// Modbus register maps and frame parsing. Pure: no I/O, no libmodbus, no exceptions on bad input.
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <utility>

#include "anju/drivers/modbus_map.hpp"

namespace anju::drivers::modbus {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  std::uint16_t count;
};
constexpr std::array<TypeInfo, 6> kTypes{{
    {DataType::boolean, "bool", 1},
    {DataType::int16, "int16", 1},
    {DataType::uint16, "uint16", 1},
    {DataType::int32, "int32", 2},
    {DataType::uint32, "uint32", 2},
    {DataType::float32, "float32", 2},
}};

constexpr std::array<std::pair<WordOrder, std::string_view>, 4> kOrders{{
    {WordOrder::ABCD, "ABCD"},
    {WordOrder::CDAB, "CDAB"},
    {WordOrder::BADC, "BADC"},
    {WordOrder::DCBA, "DCBA"},
}};

std::string_view function_name(std::uint8_t f) {
  switch (f) {
    case 1:
      return "read coils";
    case 2:
      return "read discrete inputs";
    case 3:
      return "read holding registers";
    case 4:
      return "read input registers";
    default:
      return "unsupported";
  }
}

bool is_bit_function(std::uint8_t f) {
  return f == 1 || f == 2;
}
bool is_read_function(std::uint8_t f) {
  return f >= 1 && f <= 4;
}

std::uint16_t swap_bytes(std::uint16_t w) {
  return static_cast<std::uint16_t>(((w & 0xFFu) << 8) | (w >> 8));
}

std::string hex16(std::uint16_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) s += kDigits[(v >> shift) & 0xF];
  return s;
}

}  // namespace

std::string_view to_string(DataType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i.name;
  return "unknown";
}

std::optional<DataType> data_type_from_string(std::string_view s) {
  for (const auto& i : kTypes)
    if (i.name == s) return i.type;
  return std::nullopt;
}

std::string_view to_string(WordOrder o) {
  for (const auto& [order, name] : kOrders)
    if (order == o) return name;
  return "unknown";
}

std::optional<WordOrder> word_order_from_string(std::string_view s) {
  for (const auto& [order, name] : kOrders)
    if (name == s) return order;
  return std::nullopt;
}

std::uint16_t register_count(DataType t) {
  for (const auto& i : kTypes)
    if (i.type == t) return i.count;
  return 0;
}

std::vector<std::string> validate(const RegisterEntry& e) {
  std::vector<std::string> errors;
  const std::string type(to_string(e.type));
  if (e.unit_id == 0 || (e.unit_id > 247 && e.unit_id != 255))
    errors.push_back("unit_id: " + std::to_string(e.unit_id) +
                     " is not a unit that can be read (1..247, or 255)");
  if (!is_read_function(e.function)) {
    errors.push_back("function: " + std::to_string(e.function) +
                     " is not a read function (1, 2, 3 or 4)");
  } else if (is_bit_function(e.function) && e.type != DataType::boolean) {
    errors.push_back("function: " + std::to_string(e.function) + " (" +
                     std::string(function_name(e.function)) +
                     ") reads bits; type must be bool, not " + type);
  }
  const std::uint16_t need = register_count(e.type);
  if (need == 0) {
    errors.push_back("type: unknown");
  } else if (e.count != need) {
    errors.push_back("count: " + type + " needs " + std::to_string(need) + " " +
                     (is_bit_function(e.function) ? "bit" : "register") + (need > 1 ? "s" : "") +
                     ", not " + std::to_string(e.count));
  }
  if (e.address > 65535) {
    errors.push_back("address: " + std::to_string(e.address) + " is outside 0..65535");
  } else if (e.address + e.count > 65536) {
    errors.push_back("address: " + std::to_string(e.address) + " + count " +
                     std::to_string(e.count) + " goes past 65535");
  }
  if (!std::isfinite(e.scale) || e.scale == 0) errors.push_back("scale: must be finite and not 0");
  if (!std::isfinite(e.offset)) errors.push_back("offset: must be finite");
  const bool binary = edge::is_binary_kind(e.kind);
  if (e.type == DataType::boolean && !binary)
    errors.push_back("kind: type bool needs a binary kind, not " +
                     std::string(edge::to_string(e.kind)));
  if (e.bit) {
    if (!binary)
      errors.push_back("bit: only for binary kinds, not " + std::string(edge::to_string(e.kind)));
    if (e.type == DataType::boolean || e.type == DataType::float32)
      errors.push_back("bit: only for integer types, not " + type);
    else if (*e.bit >= 16 * need)
      errors.push_back("bit: " + std::to_string(*e.bit) + " is outside 0.." +
                       std::to_string(16 * need - 1) + " for " + type);
  }
  if (e.invert && !binary)
    errors.push_back("invert: only for binary kinds, not " + std::string(edge::to_string(e.kind)));
  if (binary && !e.unit.empty()) errors.push_back("unit: a binary kind has no unit");
  return errors;
}

Decoded decode(const RegisterEntry& e, const std::vector<std::uint16_t>& words) {
  return decode_view(e, std::span<const std::uint16_t>(words));
}

Decoded decode_view(const RegisterEntry& e, std::span<const std::uint16_t> words) {
  Decoded d;
  const std::uint16_t need = register_count(e.type);
  if (need == 0) {
    d.error = "type: unknown";
    return d;
  }
  if (words.size() != need) {
    d.error = "expected " + std::to_string(need) + " " +
              (is_bit_function(e.function) ? "bit" : "register") + (need > 1 ? "s" : "") + " for " +
              std::string(to_string(e.type)) + ", got " + std::to_string(words.size());
    return d;
  }
  const bool swap = e.order == WordOrder::BADC || e.order == WordOrder::DCBA;
  const bool word_swap = e.order == WordOrder::CDAB || e.order == WordOrder::DCBA;

  // The raw value, as an integer of 32 bits (16-bit types in the low half) and as a double.
  std::uint32_t bits = 0;
  double raw = 0;
  if (e.type == DataType::boolean) {
    if (is_bit_function(e.function) && words[0] > 1) {
      d.error = "bit value must be 0 or 1, got " + std::to_string(words[0]);
      return d;
    }
    bits = words[0] != 0 ? 1 : 0;
    raw = bits;
  } else if (need == 1) {
    const std::uint16_t w = swap ? swap_bytes(words[0]) : words[0];
    bits = w;
    raw = e.type == DataType::int16 ? static_cast<double>(static_cast<std::int16_t>(w))
                                    : static_cast<double>(w);
  } else {
    std::uint16_t hi = word_swap ? words[1] : words[0];
    std::uint16_t lo = word_swap ? words[0] : words[1];
    if (swap) {
      hi = swap_bytes(hi);
      lo = swap_bytes(lo);
    }
    bits = (static_cast<std::uint32_t>(hi) << 16) | lo;
    switch (e.type) {
      case DataType::int32:
        raw = static_cast<double>(std::bit_cast<std::int32_t>(bits));
        break;
      case DataType::uint32:
        raw = static_cast<double>(bits);
        break;
      default: {
        const float f = std::bit_cast<float>(bits);
        if (!std::isfinite(f)) {
          d.error = "float32 value is not finite (bits " + hex16(static_cast<std::uint16_t>(hi)) +
                    " " + hex16(static_cast<std::uint16_t>(lo)) + ")";
          return d;
        }
        raw = static_cast<double>(f);
        break;
      }
    }
  }

  if (edge::is_binary_kind(e.kind)) {
    bool on = false;
    if (e.bit && *e.bit < 32)
      on = ((bits >> *e.bit) & 1u) != 0;
    else
      on = raw != 0;
    d.active = e.invert ? !on : on;
    return d;
  }
  const double value = raw * e.scale + e.offset;
  if (!std::isfinite(value)) {
    d.error = "value out of range after scale/offset";
    return d;
  }
  d.value = edge::Measurement{e.name.empty() ? std::string(edge::to_string(e.kind)) : e.name, value,
                              e.unit};
  return d;
}

std::string exception_text(std::uint8_t code) {
  switch (code) {
    case 1:
      return "Illegal Function: the function code is not supported by the device";
    case 2:
      return "Illegal Data Address: the address (or address + count) is not valid in the device";
    case 3:
      return "Illegal Data Value: a value in the request is not allowed (e.g. a bad count)";
    case 4:
      return "Server Device Failure: an unrecoverable error occurred in the device";
    case 5:
      return "Acknowledge: the request was accepted but needs a long time to process";
    case 6:
      return "Server Device Busy: the device is processing a long command; retry later";
    case 7:
      return "Negative Acknowledge: the device cannot perform the program function";
    case 8:
      return "Memory Parity Error: the device found a parity error in its memory";
    case 9:
      return "exception code 9: not assigned by the Modbus specification";
    case 10:
      return "Gateway Path Unavailable: the gateway could not route to the target device";
    case 11:
      return "Gateway Target Device Failed to Respond: no response from the target device";
    default:
      return "unknown exception code " + std::to_string(code);
  }
}

std::uint16_t crc16_modbus(std::span<const std::uint8_t> bytes) {
  std::uint16_t crc = 0xFFFF;
  for (const std::uint8_t b : bytes) {
    crc ^= b;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 1u) != 0 ? static_cast<std::uint16_t>((crc >> 1) ^ 0xA001u)
                            : static_cast<std::uint16_t>(crc >> 1);
  }
  return crc;
}

namespace {

// Function code byte and what follows it.
std::optional<Pdu> parse_pdu(std::span<const std::uint8_t> bytes, std::string& error) {
  if (bytes.empty()) {
    error = "PDU is empty: no function code";
    return std::nullopt;
  }
  if (bytes.size() > kMaxPduBytes) {
    error = "PDU of " + std::to_string(bytes.size()) + " bytes (max 253)";
    return std::nullopt;
  }
  Pdu p;
  const std::uint8_t fc = bytes[0];
  if (fc == 0 || fc == 0x80) {
    error = "function code 0 is not valid";
    return std::nullopt;
  }
  p.function = fc & 0x7F;
  p.exception = (fc & 0x80) != 0;
  if (p.exception) {
    if (bytes.size() != 2) {
      error = "exception response must have exactly one byte after the function code, has " +
              std::to_string(bytes.size() - 1);
      return std::nullopt;
    }
    p.exception_code = bytes[1];
    return p;
  }
  p.data.assign(bytes.begin() + 1, bytes.end());
  return p;
}

}  // namespace

RtuResult parse_rtu(std::span<const std::uint8_t> bytes) {
  RtuResult r;
  if (bytes.size() < 4) {
    r.error = "RTU frame of " + std::to_string(bytes.size()) +
              " bytes is too short (address, function, CRC: at least 4)";
    return r;
  }
  if (bytes.size() > kMaxRtuFrameBytes) {
    r.error = "RTU frame of " + std::to_string(bytes.size()) + " bytes is too long (max 256)";
    return r;
  }
  const std::size_t n = bytes.size();
  const std::uint16_t got = static_cast<std::uint16_t>(bytes[n - 2] | (bytes[n - 1] << 8));
  const std::uint16_t want = crc16_modbus(bytes.first(n - 2));
  if (got != want) {
    r.error = "CRC mismatch: frame " + hex16(got) + ", computed " + hex16(want);
    return r;
  }
  if (bytes[0] > 247) {
    r.error = "address " + std::to_string(bytes[0]) + " is reserved (0 broadcast, 1..247 units)";
    return r;
  }
  std::string error;
  auto pdu = parse_pdu(bytes.subspan(1, n - 3), error);
  if (!pdu) {
    r.error = error;
    return r;
  }
  r.frame = RtuFrame{bytes[0], std::move(*pdu), got};
  return r;
}

std::vector<std::uint8_t> encode_rtu(std::uint8_t address, std::uint8_t function,
                                     std::span<const std::uint8_t> data) {
  std::vector<std::uint8_t> out;
  out.reserve(data.size() + 4);
  out.push_back(address);
  out.push_back(function);
  out.insert(out.end(), data.begin(), data.end());
  const std::uint16_t crc = crc16_modbus(out);
  out.push_back(static_cast<std::uint8_t>(crc & 0xFF));
  out.push_back(static_cast<std::uint8_t>(crc >> 8));
  return out;
}

TcpResult parse_tcp(std::span<const std::uint8_t> bytes) {
  TcpResult r;
  if (bytes.size() < 7) {
    r.incomplete = true;
    return r;
  }
  MbapHeader h;
  h.transaction_id = static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
  h.protocol_id = static_cast<std::uint16_t>((bytes[2] << 8) | bytes[3]);
  h.length = static_cast<std::uint16_t>((bytes[4] << 8) | bytes[5]);
  h.unit_id = bytes[6];
  if (h.protocol_id != 0) {
    r.error = "MBAP protocol id " + std::to_string(h.protocol_id) + " is not 0 (Modbus)";
    return r;
  }
  if (h.length < 2) {
    r.error = "MBAP length " + std::to_string(h.length) + " is too small (unit id + function: 2)";
    return r;
  }
  if (h.length > kMaxPduBytes + 1) {
    r.error = "MBAP length " + std::to_string(h.length) + " is too large (max 254)";
    return r;
  }
  r.header = h;
  r.adu_bytes = 6 + static_cast<std::size_t>(h.length);
  if (bytes.size() < r.adu_bytes) {
    r.incomplete = true;
    return r;
  }
  std::string error;
  auto pdu = parse_pdu(bytes.subspan(7, r.adu_bytes - 7), error);
  if (!pdu) {
    r.error = error;
    return r;
  }
  r.pdu = std::move(*pdu);
  return r;
}

RegistersResult parse_read_response(const Pdu& pdu, std::uint16_t count) {
  RegistersResult r;
  if (pdu.exception) {
    r.error = "exception " + std::to_string(pdu.exception_code) + ": " +
              exception_text(pdu.exception_code);
    return r;
  }
  if (!is_read_function(pdu.function)) {
    r.error = "function " + std::to_string(pdu.function) + " is not a read function";
    return r;
  }
  if (pdu.data.empty()) {
    r.error = "response has no byte count";
    return r;
  }
  const std::size_t byte_count = pdu.data[0];
  if (pdu.data.size() != byte_count + 1) {
    r.error = "byte count " + std::to_string(byte_count) + " but " +
              std::to_string(pdu.data.size() - 1) + " data bytes";
    return r;
  }
  const bool bits = is_bit_function(pdu.function);
  const std::size_t want = bits ? (static_cast<std::size_t>(count) + 7) / 8 : 2u * count;
  if (count == 0 || byte_count != want) {
    r.error = "byte count " + std::to_string(byte_count) + " does not fit " +
              std::to_string(count) + (bits ? " bits" : " registers") + " (expected " +
              std::to_string(want) + ")";
    return r;
  }
  r.words.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (bits)
      r.words.push_back(static_cast<std::uint16_t>((pdu.data[1 + i / 8] >> (i % 8)) & 1u));
    else
      r.words.push_back(
          static_cast<std::uint16_t>((pdu.data[1 + 2 * i] << 8) | pdu.data[2 + 2 * i]));
  }
  return r;
}

}  // namespace anju::drivers::modbus
