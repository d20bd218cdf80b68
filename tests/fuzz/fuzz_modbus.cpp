// libFuzzer target for the Modbus register decoder and frame parsers. The whole input is an RTU
// frame and a TCP ADU; split at the first NUL or newline, the head chooses a register entry and
// the tail gives its registers. Nothing may crash, and what parses must re-encode to the input.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "anju/drivers/modbus_map.hpp"

namespace mb = anju::drivers::modbus;
using anju::edge::EventKind;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_text(const std::string& s) {
  check(!nlohmann::json(s).dump().empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);

  // RTU: a frame that parses re-encodes to exactly the input.
  const auto rtu = mb::parse_rtu(bytes);
  check(rtu.frame.has_value() == rtu.error.empty());
  check_text(rtu.error);
  if (rtu.frame) {
    const auto& f = *rtu.frame;
    std::vector<std::uint8_t> body = f.pdu.data;
    std::uint8_t fc = f.pdu.function;
    if (f.pdu.exception) {
      fc |= 0x80;
      body = {f.pdu.exception_code};
      check_text(mb::exception_text(f.pdu.exception_code));
    }
    const auto again = mb::encode_rtu(f.address, fc, body);
    check(again.size() == size && std::equal(again.begin(), again.end(), data));
    const auto regs = mb::parse_read_response(f.pdu, static_cast<std::uint16_t>(size));
    check(regs.words.empty() != regs.error.empty());
    check_text(regs.error);
  }

  // TCP: the header, when known, says how long the ADU is.
  const auto tcp = mb::parse_tcp(bytes);
  check_text(tcp.error);
  if (tcp.pdu) check(tcp.header && tcp.adu_bytes <= size && tcp.error.empty() && !tcp.incomplete);
  if (tcp.incomplete) check(tcp.error.empty() && !tcp.pdu && (!tcp.header || tcp.adu_bytes > size));

  // Register decoding: the head's first bytes choose the entry, the tail's bytes are registers.
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto cut = input.find_first_of(std::string_view("\0\n", 2));
  const std::string_view head = cut == std::string_view::npos ? input : input.substr(0, cut);
  const std::string_view tail =
      cut == std::string_view::npos ? std::string_view{} : input.substr(cut + 1);
  auto byte = [&head](std::size_t i) -> std::uint8_t {
    return i < head.size() ? static_cast<std::uint8_t>(head[i]) : 0;
  };
  mb::RegisterEntry e;
  e.function = static_cast<std::uint8_t>(byte(0) % 6);
  e.type = static_cast<mb::DataType>(byte(1) % 6);
  e.order = static_cast<mb::WordOrder>(byte(2) % 4);
  e.count = static_cast<std::uint16_t>(byte(3) % 4);
  e.address = static_cast<std::uint32_t>(byte(4)) << 8 | byte(5);
  e.unit_id = byte(6);
  e.kind = (byte(7) & 1) != 0 ? EventKind::equipment_alarm : EventKind::pressure;
  if ((byte(7) & 2) != 0) e.bit = static_cast<std::uint8_t>(byte(8) % 40);
  e.invert = (byte(7) & 4) != 0;
  e.scale = (byte(7) & 8) != 0 ? 1e300 : 0.1;
  for (const auto& err : mb::validate(e)) check_text(err);
  std::vector<std::uint16_t> words;
  for (std::size_t i = 0; i + 1 < tail.size() && words.size() < 8; i += 2)
    words.push_back(static_cast<std::uint16_t>(static_cast<std::uint8_t>(tail[i]) << 8 |
                                               static_cast<std::uint8_t>(tail[i + 1])));
  const auto d = mb::decode(e, words);
  check_text(d.error);
  const int set = (d.value ? 1 : 0) + (d.active ? 1 : 0) + (d.error.empty() ? 0 : 1);
  check(set == 1);
  if (d.value) check(std::isfinite(d.value->value));
  if (mb::validate(e).empty() && words.size() == e.count && e.type != mb::DataType::float32 &&
      !(e.type == mb::DataType::boolean && words[0] > 1) && e.scale < 1)
    check(d.error.empty());

  check_text(std::string(mb::to_string(e.type)) + std::string(mb::to_string(e.order)));
  mb::data_type_from_string(head);
  mb::word_order_from_string(head);
  return 0;
}
