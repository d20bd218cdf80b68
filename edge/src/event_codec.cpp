// The compact binary form of an Event: what the inbox and the journal store.
//
// Layout (all integers little-endian varints, zigzag for signed; strings are varint length +
// bytes; ids are a tag byte, 1 = canonical lower-case UUID as 16 bytes, 0 = a string):
//   0xB1 (format 1) · id · ts_ms · mono_ns · boot_id · flags · kind (string) · severity ·
//   site · grid_code · building · unit · room · device id · device kind · device name ·
//   gb28181 · source · source_key · value count · {name · 8-byte IEEE double · unit}… ·
//   attrs (see put_attrs)
// flags: bit 0 clock_synced, bit 1 `active` present, bit 2 its value.
// The kind is stored by name, not by enum position, so that inserting kinds never changes what
// an old row means. New fields go at the end behind a new format byte.
#include <cmath>
#include <cstring>

#include "anju/edge/event.hpp"

namespace anju::edge {
namespace {

constexpr unsigned char kFormat1 = 0xB1;
constexpr std::size_t kMaxField = 1u << 20;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_signed(std::string& out, std::int64_t v) {
  put_varint(out, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}

void put_str(std::string& out, std::string_view s) {
  put_varint(out, s.size());
  out.append(s);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Canonical lower-case 8-4-4-4-12 → 16 bytes; false for anything else (kept as a string).
bool uuid_bytes(std::string_view s, unsigned char (&b)[16]) {
  if (s.size() != 36) return false;
  int n = 0;
  for (std::size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
      ++i;
      continue;
    }
    const int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi < 0 || lo < 0) return false;
    b[n++] = static_cast<unsigned char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

void put_id(std::string& out, std::string_view s) {
  unsigned char b[16];
  if (uuid_bytes(s, b)) {
    out.push_back(1);
    out.append(reinterpret_cast<const char*>(b), 16);
  } else {
    out.push_back(0);
    put_str(out, s);
  }
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  std::string error;

  bool varint(std::uint64_t& v, const char* field) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return fail(field, "truncated");
      const auto byte = static_cast<unsigned char>(in_[pos_++]);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) return true;
    }
    return fail(field, "varint longer than 10 bytes");
  }
  bool signed_int(std::int64_t& v, const char* field) {
    std::uint64_t u = 0;
    if (!varint(u, field)) return false;
    v = static_cast<std::int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool str(std::string& s, const char* field) {
    std::uint64_t n = 0;
    if (!varint(n, field)) return false;
    if (n > kMaxField || n > in_.size() - pos_) return fail(field, "length past the end");
    s.assign(in_.data() + pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return true;
  }
  bool byte(unsigned char& b, const char* field) {
    if (pos_ >= in_.size()) return fail(field, "truncated");
    b = static_cast<unsigned char>(in_[pos_++]);
    return true;
  }
  bool id(std::string& s, const char* field) {
    unsigned char tag = 0;
    if (!byte(tag, field)) return false;
    if (tag == 0) return str(s, field);
    if (tag != 1) return fail(field, "unknown id tag");
    if (in_.size() - pos_ < 16) return fail(field, "truncated");
    static constexpr char kHex[] = "0123456789abcdef";
    s.clear();
    s.reserve(36);
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
      const auto b = static_cast<unsigned char>(in_[pos_++]);
      s.push_back(kHex[b >> 4]);
      s.push_back(kHex[b & 15]);
    }
    return true;
  }
  bool f64(double& d, const char* field) {
    if (in_.size() - pos_ < 8) return fail(field, "truncated");
    std::uint64_t u = 0;
    for (int i = 0; i < 8; ++i)
      u |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_++])) << (8 * i);
    std::memcpy(&d, &u, sizeof d);
    return true;
  }
  bool at_end() const { return pos_ == in_.size(); }
  bool fail(const char* field, const char* what) {
    error = std::string("binary event: field '") + field + "': " + what + " at byte " +
            std::to_string(pos_);
    return false;
  }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

// attrs: 0 = none; 1 = JSON text; 2 = a flat object: count, then per member its key and a
// type byte (s string, i integer, u unsigned, d double, t true, f false, n null) and value.
// Drivers' attrs are nearly always flat (link quality, RSSI, frame counters): no JSON text.
void put_attrs(std::string& out, const nlohmann::json& attrs) {
  if (!attrs.is_object() || attrs.empty()) {
    out.push_back(0);
    return;
  }
  for (auto it = attrs.begin(); it != attrs.end(); ++it)
    if (it->is_structured() || it->is_binary()) {
      out.push_back(1);
      put_str(out, attrs.dump());
      return;
    }
  out.push_back(2);
  put_varint(out, attrs.size());
  for (auto it = attrs.begin(); it != attrs.end(); ++it) {
    put_str(out, it.key());
    const auto& v = it.value();
    if (v.is_string()) {
      out.push_back('s');
      put_str(out, v.get_ref<const std::string&>());
    } else if (v.is_number_unsigned()) {
      out.push_back('u');
      put_varint(out, v.get<std::uint64_t>());
    } else if (v.is_number_integer()) {
      out.push_back('i');
      put_signed(out, v.get<std::int64_t>());
    } else if (v.is_number_float() && std::isfinite(v.get<double>())) {
      out.push_back('d');
      const double d = v.get<double>();
      std::uint64_t u = 0;
      std::memcpy(&u, &d, sizeof u);
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
    } else if (v.is_boolean()) {
      out.push_back(v.get<bool>() ? 't' : 'f');
    } else {
      out.push_back('n');
    }
  }
}

}  // namespace

std::string encode_binary(const Event& e) {
  std::string out;
  out.reserve(160 + e.site.size() + e.device.name.size() + e.values.size() * 24);
  out.push_back(static_cast<char>(kFormat1));
  put_id(out, e.id);
  put_signed(out, e.ts_ms);
  put_signed(out, e.mono_ns);
  put_id(out, e.boot_id);
  unsigned char flags = e.clock_synced ? 1 : 0;
  if (e.active) flags |= static_cast<unsigned char>(2 | (*e.active ? 4 : 0));
  out.push_back(static_cast<char>(flags));
  put_str(out, to_string(e.kind));
  out.push_back(static_cast<char>(e.severity));
  put_str(out, e.site);
  put_str(out, e.grid_code);
  put_str(out, e.location.building);
  put_str(out, e.location.unit);
  put_str(out, e.location.room);
  put_str(out, e.device.id);
  put_str(out, e.device.kind);
  put_str(out, e.device.name);
  put_str(out, e.device.gb28181);
  put_str(out, e.source);
  put_str(out, e.source_key);
  put_varint(out, e.values.size());
  for (const auto& m : e.values) {
    put_str(out, m.name);
    std::uint64_t u = 0;
    std::memcpy(&u, &m.value, sizeof u);
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
    put_str(out, m.unit);
  }
  put_attrs(out, e.attrs);
  return out;
}

namespace {
bool read_attrs(Reader& in, nlohmann::json& attrs) {
  unsigned char mode = 0;
  if (!in.byte(mode, "attrs")) return false;
  if (mode == 0) return true;
  if (mode == 1) {
    std::string text;
    if (!in.str(text, "attrs")) return false;
    attrs = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!attrs.is_object()) return in.fail("attrs", "not a JSON object");
    return true;
  }
  if (mode != 2) return in.fail("attrs", "unknown form");
  std::uint64_t n = 0;
  if (!in.varint(n, "attrs")) return false;
  if (n > 1024) return in.fail("attrs", "too many members");
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string key;
    unsigned char type = 0;
    if (!in.str(key, "attrs.key") || !in.byte(type, "attrs.type")) return false;
    nlohmann::json& v = attrs[key];
    switch (type) {
      case 's': {
        std::string s;
        if (!in.str(s, "attrs.value")) return false;
        v = std::move(s);
        break;
      }
      case 'u': {
        std::uint64_t u = 0;
        if (!in.varint(u, "attrs.value")) return false;
        v = u;
        break;
      }
      case 'i': {
        std::int64_t x = 0;
        if (!in.signed_int(x, "attrs.value")) return false;
        v = x;
        break;
      }
      case 'd': {
        double d = 0;
        if (!in.f64(d, "attrs.value")) return false;
        if (!std::isfinite(d)) return in.fail("attrs.value", "not finite");
        v = d;
        break;
      }
      case 't':
        v = true;
        break;
      case 'f':
        v = false;
        break;
      case 'n':
        v = nullptr;
        break;
      default:
        return in.fail("attrs.type", "unknown type");
    }
  }
  if (attrs.size() != n) return in.fail("attrs", "duplicate key");
  return true;
}
}  // namespace

DecodeResult decode_binary(std::string_view bytes) {
  DecodeResult r;
  if (bytes.empty() || static_cast<unsigned char>(bytes[0]) != kFormat1) {
    r.error = "binary event: unknown format byte";
    return r;
  }
  Reader in(bytes.substr(1));
  Event e;
  unsigned char flags = 0, severity = 0;
  std::string kind;
  std::uint64_t n_values = 0;
  const bool ok =
      in.id(e.id, "id") && in.signed_int(e.ts_ms, "ts_ms") && in.signed_int(e.mono_ns, "mono_ns") &&
      in.id(e.boot_id, "boot_id") && in.byte(flags, "flags") && in.str(kind, "kind") &&
      in.byte(severity, "severity") && in.str(e.site, "site") && in.str(e.grid_code, "grid_code") &&
      in.str(e.location.building, "building") && in.str(e.location.unit, "unit") &&
      in.str(e.location.room, "room") && in.str(e.device.id, "device.id") &&
      in.str(e.device.kind, "device.kind") && in.str(e.device.name, "device.name") &&
      in.str(e.device.gb28181, "device.gb28181") && in.str(e.source, "source") &&
      in.str(e.source_key, "source_key") && in.varint(n_values, "values");
  if (!ok) {
    r.error = in.error;
    return r;
  }
  if (flags > 7) {
    r.error = "binary event: field 'flags': unknown bits";
    return r;
  }
  e.clock_synced = flags & 1;
  if (flags & 2) e.active = (flags & 4) != 0;
  auto k = event_kind_from_string(kind);
  if (!k) {
    r.error = "binary event: unknown event kind '" + kind + "'";
    return r;
  }
  e.kind = *k;
  if (severity < 1 || severity > 4) {
    r.error = "binary event: field 'severity' must be 1..4, got " + std::to_string(severity);
    return r;
  }
  e.severity = severity;
  if (n_values > 1024) {
    r.error = "binary event: field 'values': too many (" + std::to_string(n_values) + ")";
    return r;
  }
  e.values.resize(static_cast<std::size_t>(n_values));
  for (auto& m : e.values) {
    if (!in.str(m.name, "values.name") || !in.f64(m.value, "values.value") ||
        !in.str(m.unit, "values.unit")) {
      r.error = in.error;
      return r;
    }
    if (!std::isfinite(m.value)) {
      r.error = "binary event: field 'values.value' must be finite";
      return r;
    }
  }
  if (!read_attrs(in, e.attrs)) {
    r.error = in.error;
    return r;
  }
  if (!in.at_end()) {
    r.error = "binary event: bytes after the last field";
    return r;
  }
  r.event = std::move(e);
  return r;
}

DecodeResult decode_stored(std::string_view bytes) {
  if (!bytes.empty() && bytes[0] == '{') return decode_event(bytes);
  return decode_binary(bytes);
}

}  // namespace anju::edge
