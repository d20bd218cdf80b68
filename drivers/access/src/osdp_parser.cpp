// OSDP v2.2 Control Panel codec, reply parsers and Secure Channel. Pure: no I/O, no clock, no
// random source; bad input yields an error value, never an exception or UB (bytes are read one
// at a time, no casts of the buffer to structs).
#include "anju/drivers/osdp.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <utility>

namespace anju::drivers::osdp {
namespace {

std::string hex8(std::uint8_t v) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%02x", static_cast<unsigned>(v));
  return b;
}
std::string hex16(std::uint16_t v) {
  char b[8];
  std::snprintf(b, sizeof b, "0x%04x", static_cast<unsigned>(v));
  return b;
}
std::string num(std::size_t v) {
  return std::to_string(v);
}

std::uint16_t le16(ByteView b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | (b[at + 1] << 8));
}
std::uint32_t le32(ByteView b, std::size_t at) {
  return static_cast<std::uint32_t>(b[at]) | (static_cast<std::uint32_t>(b[at + 1]) << 8) |
         (static_cast<std::uint32_t>(b[at + 2]) << 16) |
         (static_cast<std::uint32_t>(b[at + 3]) << 24);
}
void put16(Bytes& out, std::uint16_t v) {
  out.push_back(static_cast<std::uint8_t>(v & 0xFF));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
}
void put32(Bytes& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>((v >> (8 * i)) & 0xFF));
}

// --- AES-128 through EVP; every call is one-shot, padding disabled (OSDP pads by itself) ------

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// Encrypts (or decrypts) whole blocks in ECB (iv == nullptr) or CBC mode. The inputs are always
// whole blocks and keys are 16 bytes, so EVP cannot fail short of running out of memory; should
// it fail anyway, the output is all zeros, which never verifies against anything.
Bytes aes(bool encrypt, const Key& key, const Block* iv, ByteView in) {
  Bytes out(in.size() + 16, 0);
  std::unique_ptr<EVP_CIPHER_CTX, CtxFree> ctx(EVP_CIPHER_CTX_new());
  int n1 = 0, n2 = 0;
  const EVP_CIPHER* cipher = iv ? EVP_aes_128_cbc() : EVP_aes_128_ecb();
  const bool ok =
      ctx && in.size() % 16 == 0 &&
      EVP_CipherInit_ex(ctx.get(), cipher, nullptr, key.data(), iv ? iv->data() : nullptr,
                        encrypt ? 1 : 0) == 1 &&
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1 &&
      EVP_CipherUpdate(ctx.get(), out.data(), &n1, in.data(), static_cast<int>(in.size())) == 1 &&
      EVP_CipherFinal_ex(ctx.get(), out.data() + n1, &n2) == 1 &&
      static_cast<std::size_t>(n1 + n2) == in.size();
  if (!ok) std::fill(out.begin(), out.end(), 0);
  out.resize(in.size());
  return out;
}

Block ecb_block(const Key& key, const Block& in) {
  const Bytes o = aes(true, key, nullptr, in);
  Block b{};
  std::copy(o.begin(), o.end(), b.begin());
  return b;
}

Block complement(const Block& b) {
  Block r{};
  for (std::size_t i = 0; i < 16; ++i) r[i] = static_cast<std::uint8_t>(~b[i]);
  return r;
}

void wipe(void* p, std::size_t n) {
  volatile auto* v = static_cast<volatile std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i) v[i] = 0;
}

// --- frame building -----------------------------------------------------------------------

struct Layout {
  std::uint8_t addr_byte;
  std::uint8_t sqn;
  bool crc;
  const SecurityBlock* scb;
  std::uint8_t code;
  ByteView data;
  bool with_mac;
};

// Builds the frame up to and including the data, with LEN already counting MAC and check
// characters (the MAC covers the header, so LEN must be final before it is computed).
EncodeResult build_head(const Layout& l) {
  EncodeResult r;
  if ((l.addr_byte & 0x7F) > kBroadcast) {
    r.error = "address out of range";
    return r;
  }
  if (l.sqn > 3) {
    r.error = "sequence number " + num(l.sqn) + " out of range (0..3)";
    return r;
  }
  const std::size_t scb_len = l.scb ? 2 + l.scb->data.size() : 0;
  if (scb_len > 0xFF) {
    r.error = "security block too long";
    return r;
  }
  const std::size_t total =
      5 + scb_len + 1 + l.data.size() + (l.with_mac ? 4 : 0) + (l.crc ? 2 : 1);
  if (total > kMaxFrameBytes) {
    r.error = "frame of " + num(total) + " bytes exceeds the maximum of " + num(kMaxFrameBytes);
    return r;
  }
  Bytes& o = r.bytes;
  o.reserve(total);
  o.push_back(kSom);
  o.push_back(l.addr_byte);
  put16(o, static_cast<std::uint16_t>(total));
  o.push_back(static_cast<std::uint8_t>(l.sqn | (l.crc ? 0x04 : 0) | (l.scb ? 0x08 : 0)));
  if (l.scb) {
    o.push_back(static_cast<std::uint8_t>(scb_len));
    o.push_back(l.scb->type);
    o.insert(o.end(), l.scb->data.begin(), l.scb->data.end());
  }
  o.push_back(l.code);
  o.insert(o.end(), l.data.begin(), l.data.end());
  return r;
}

void append_check(Bytes& o, bool crc) {
  if (crc)
    put16(o, crc16(o));
  else
    o.push_back(checksum(o));
}

EncodeResult encode_plain(std::uint8_t addr_byte, std::uint8_t sqn, std::uint8_t code,
                          ByteView data, const EncodeOptions& options) {
  if (options.scb && scb_has_mac(options.scb->type))
    return {
        {},
        "security block type " + hex8(options.scb->type) + " needs a MAC: use SecureChannel::wrap"};
  EncodeResult r = build_head(
      {addr_byte, sqn, options.crc, options.scb ? &*options.scb : nullptr, code, data, false});
  if (r.error.empty()) append_check(r.bytes, options.crc);
  return r;
}

// --- reply parsing helpers ------------------------------------------------------------------

ReplyResult bad(std::uint8_t code, std::string why) {
  return {std::nullopt, reply_name(code) + ": " + std::move(why)};
}
ReplyResult exact(std::uint8_t code, ByteView data, std::size_t n) {
  return bad(code, num(data.size()) + " data bytes, expected " + num(n));
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string command_name(std::uint8_t code) {
  switch (code) {
    case cmd::poll:
      return "osdp_POLL";
    case cmd::id:
      return "osdp_ID";
    case cmd::cap:
      return "osdp_CAP";
    case cmd::lstat:
      return "osdp_LSTAT";
    case cmd::istat:
      return "osdp_ISTAT";
    case cmd::ostat:
      return "osdp_OSTAT";
    case cmd::out:
      return "osdp_OUT";
    case cmd::led:
      return "osdp_LED";
    case cmd::buz:
      return "osdp_BUZ";
    case cmd::comset:
      return "osdp_COMSET";
    case cmd::keyset:
      return "osdp_KEYSET";
    case cmd::chlng:
      return "osdp_CHLNG";
    case cmd::scrypt:
      return "osdp_SCRYPT";
    default:
      return "unknown command " + hex8(code);
  }
}

std::string reply_name(std::uint8_t code) {
  switch (code) {
    case reply::ack:
      return "osdp_ACK";
    case reply::nak:
      return "osdp_NAK";
    case reply::pdid:
      return "osdp_PDID";
    case reply::pdcap:
      return "osdp_PDCAP";
    case reply::lstatr:
      return "osdp_LSTATR";
    case reply::istatr:
      return "osdp_ISTATR";
    case reply::ostatr:
      return "osdp_OSTATR";
    case reply::raw:
      return "osdp_RAW";
    case reply::fmt:
      return "osdp_FMT";
    case reply::keypad:
      return "osdp_KEYPAD";
    case reply::com:
      return "osdp_COM";
    case reply::ccrypt:
      return "osdp_CCRYPT";
    case reply::rmac_i:
      return "osdp_RMAC_I";
    case reply::busy:
      return "osdp_BUSY";
    default:
      return "unknown reply " + hex8(code);
  }
}

bool scb_has_mac(std::uint8_t t) {
  return t >= scs::cmd_mac && t <= scs::reply_enc;
}

std::uint16_t crc16(ByteView bytes) {
  std::uint16_t crc = 0x1D0F;
  for (std::uint8_t b : bytes) {
    crc = static_cast<std::uint16_t>(crc ^ (b << 8));
    for (int i = 0; i < 8; ++i)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

std::uint8_t checksum(ByteView bytes) {
  unsigned sum = 0;
  for (std::uint8_t b : bytes) sum += b;
  return static_cast<std::uint8_t>((~sum + 1) & 0xFF);
}

FrameResult decode_frame(ByteView b) {
  FrameResult r;
  if (b.empty()) {
    r.error = "truncated: empty frame";
    return r;
  }
  if (b[0] != kSom) {
    r.error = "bad SOM " + hex8(b[0]) + " (expected 0x53)";
    return r;
  }
  if (b.size() < 5) {
    r.error = "truncated: " + num(b.size()) + " bytes, the header needs 5";
    return r;
  }
  const std::size_t len = le16(b, 2);
  const std::uint8_t ctrl = b[4];
  const bool crc = (ctrl & 0x04) != 0;
  const std::size_t min = crc ? kMinFrameCrc : kMinFrameChecksum;
  if (len < min) {
    r.error = "length field " + num(len) + " too small (minimum " + num(min) + ")";
    return r;
  }
  if (len > kMaxFrameBytes) {
    r.error = "length field " + num(len) + " exceeds the maximum of " + num(kMaxFrameBytes);
    return r;
  }
  if (b.size() < len) {
    r.error = "truncated: " + num(b.size()) + " of " + num(len) + " bytes";
    return r;
  }
  if (b.size() > len) {
    r.error =
        num(b.size() - len) + " bytes after the end of the frame (length field " + num(len) + ")";
    return r;
  }
  const std::size_t check_len = crc ? 2 : 1;
  const std::size_t body_end = len - check_len;  // index of the first check byte
  if (crc) {
    const std::uint16_t have = le16(b, body_end);
    const std::uint16_t want = crc16(b.first(body_end));
    if (have != want) {
      r.error = "CRC mismatch: frame has " + hex16(have) + ", computed " + hex16(want);
      return r;
    }
  } else {
    const std::uint8_t have = b[body_end];
    const std::uint8_t want = checksum(b.first(body_end));
    if (have != want) {
      r.error = "checksum mismatch: frame has " + hex8(have) + ", computed " + hex8(want);
      return r;
    }
  }

  Frame f;
  f.address = b[1] & 0x7F;
  f.from_pd = (b[1] & kReplyFlag) != 0;
  f.sqn = ctrl & 0x03;
  f.crc = crc;
  std::size_t pos = 5;
  if (ctrl & 0x08) {
    const std::size_t sl = b[pos];
    if (sl < 2) {
      r.error = "security block length " + num(sl) + " too small (minimum 2)";
      return r;
    }
    // The block must leave room for the code byte.
    if (pos + sl + 1 > body_end) {
      r.error = "security block length " + num(sl) + " exceeds the frame";
      return r;
    }
    const std::uint8_t type = b[pos + 1];
    if (type < scs::chlng || type > scs::reply_enc) {
      r.error = "security block type " + hex8(type) + " unknown (expected 0x11..0x18)";
      return r;
    }
    SecurityBlock sb;
    sb.type = type;
    sb.data.assign(b.begin() + static_cast<std::ptrdiff_t>(pos + 2),
                   b.begin() + static_cast<std::ptrdiff_t>(pos + sl));
    f.scb = std::move(sb);
    pos += sl;
  }
  std::size_t data_end = body_end;
  if (f.scb && scb_has_mac(f.scb->type)) {
    if (pos + 1 + 4 > body_end) {
      r.error = "too short for the 4-byte MAC of security block " + hex8(f.scb->type);
      return r;
    }
    data_end = body_end - 4;
    std::array<std::uint8_t, 4> mac{};
    std::copy(b.begin() + static_cast<std::ptrdiff_t>(data_end),
              b.begin() + static_cast<std::ptrdiff_t>(body_end), mac.begin());
    f.mac = mac;
  }
  f.code = b[pos];
  f.data.assign(b.begin() + static_cast<std::ptrdiff_t>(pos + 1),
                b.begin() + static_cast<std::ptrdiff_t>(data_end));
  f.raw.assign(b.begin(), b.end());
  r.frame = std::move(f);
  return r;
}

EncodeResult encode_command(std::uint8_t address, std::uint8_t sqn, std::uint8_t code,
                            ByteView data, const EncodeOptions& options) {
  if (address > kBroadcast) return {{}, "address " + num(address) + " out of range (0..127)"};
  return encode_plain(address, sqn, code, data, options);
}

EncodeResult encode_reply(std::uint8_t address, std::uint8_t sqn, std::uint8_t code, ByteView data,
                          const EncodeOptions& options) {
  if (address > kBroadcast) return {{}, "address " + num(address) + " out of range (0..127)"};
  return encode_plain(static_cast<std::uint8_t>(address | kReplyFlag), sqn, code, data, options);
}

std::uint8_t next_sqn(std::uint8_t sqn) {
  return static_cast<std::uint8_t>((sqn & 0x03) >= 3 ? 1 : (sqn & 0x03) + 1);
}

// --- FrameReader ----------------------------------------------------------------------------

FrameReader::FrameReader(std::size_t max_frame_bytes)
    : max_(std::clamp<std::size_t>(max_frame_bytes, kMinFrameCrc, kMaxFrameBytes)) {}

void FrameReader::reset() {
  skipped_ += buf_.size();
  buf_.clear();
  resyncing_ = false;
}

std::vector<FrameResult> FrameReader::feed(ByteView chunk) {
  std::vector<FrameResult> out;
  buf_.insert(buf_.end(), chunk.begin(), chunk.end());
  std::size_t pos = 0;  // consumed prefix of buf_
  auto drop_bad = [&](std::string error) {
    ++bad_frames_;
    if (!resyncing_) out.push_back({std::nullopt, std::move(error)});
    resyncing_ = true;
    ++skipped_;  // the SOM byte of the bad candidate
    ++pos;
  };
  while (pos < buf_.size()) {
    if (buf_[pos] != kSom) {
      const auto next =
          std::find(buf_.begin() + static_cast<std::ptrdiff_t>(pos), buf_.end(), kSom);
      const auto n = static_cast<std::size_t>(next - buf_.begin()) - pos;
      skipped_ += n;
      pos += n;
      continue;
    }
    const std::size_t avail = buf_.size() - pos;
    if (avail < 5) break;  // need the header
    const std::size_t len = static_cast<std::size_t>(buf_[pos + 2] | (buf_[pos + 3] << 8));
    const bool crc = (buf_[pos + 4] & 0x04) != 0;
    const std::size_t min = crc ? kMinFrameCrc : kMinFrameChecksum;
    if (len < min || len > max_) {
      drop_bad("length field " + num(len) + (len < min ? " too small" : " too large") +
               " (allowed " + num(min) + ".." + num(max_) + ")");
      continue;
    }
    if (avail < len) break;  // wait for the rest
    FrameResult r = decode_frame(ByteView(buf_).subspan(pos, len));
    if (r.frame) {
      resyncing_ = false;
      out.push_back(std::move(r));
      pos += len;
    } else {
      drop_bad(std::move(r.error));
    }
  }
  buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos));
  return out;
}

// --- commands ---------------------------------------------------------------------------------

Command poll() {
  return {cmd::poll, {}};
}
Command id_report() {
  return {cmd::id, {0x00}};
}
Command capabilities() {
  return {cmd::cap, {0x00}};
}
Command local_status() {
  return {cmd::lstat, {}};
}
Command input_status() {
  return {cmd::istat, {}};
}
Command output_status() {
  return {cmd::ostat, {}};
}

Command output(const std::vector<OutputControl>& outputs) {
  Command c{cmd::out, {}};
  for (const auto& o : outputs) {
    c.data.push_back(o.output);
    c.data.push_back(o.control);
    put16(c.data, o.timer_100ms);
  }
  return c;
}

Command led(const std::vector<LedControl>& leds) {
  Command c{cmd::led, {}};
  for (const auto& l : leds) {
    c.data.insert(c.data.end(),
                  {l.reader, l.led, l.temporary.control, l.temporary.on_100ms,
                   l.temporary.off_100ms, l.temporary.on_color, l.temporary.off_color});
    put16(c.data, l.temporary.timer_100ms);
    c.data.insert(c.data.end(), {l.permanent.control, l.permanent.on_100ms, l.permanent.off_100ms,
                                 l.permanent.on_color, l.permanent.off_color});
  }
  return c;
}

Command buzzer(const BuzzerControl& b) {
  return {cmd::buz, {b.reader, b.tone, b.on_100ms, b.off_100ms, b.count}};
}

CommandResult comset(std::uint8_t new_address, std::uint32_t baud) {
  if (new_address >= kBroadcast)
    return {std::nullopt, "osdp_COMSET: address " + num(new_address) + " out of range (0..126)"};
  constexpr std::array<std::uint32_t, 6> kBauds{9600, 19200, 38400, 57600, 115200, 230400};
  if (std::find(kBauds.begin(), kBauds.end(), baud) == kBauds.end())
    return {std::nullopt, "osdp_COMSET: baud rate " + std::to_string(baud) + " not supported"};
  Command c{cmd::comset, {new_address}};
  put32(c.data, baud);
  return {c, ""};
}

Command keyset(const Key& scbk) {
  Command c{cmd::keyset, {0x01, 16}};
  c.data.insert(c.data.end(), scbk.begin(), scbk.end());
  return c;
}

Command challenge(const Random& rnd_a) {
  return {cmd::chlng, Bytes(rnd_a.begin(), rnd_a.end())};
}

Command server_cryptogram_cmd(const Block& sc) {
  return {cmd::scrypt, Bytes(sc.begin(), sc.end())};
}

// --- replies ----------------------------------------------------------------------------------

std::string nak_reason_text(std::uint8_t reason) {
  switch (reason) {
    case 0:
      return "no error";
    case 1:
      return "message check character(s) error (bad checksum or CRC)";
    case 2:
      return "command length error";
    case 3:
      return "unknown command code";
    case 4:
      return "unexpected sequence number";
    case 5:
      return "security block not supported";
    case 6:
      return "communication security conditions not met (encryption required)";
    case 7:
      return "BIO_TYPE not supported";
    case 8:
      return "BIO_FORMAT not supported";
    case 9:
      return "unable to process command record";
    default:
      return "unknown NAK reason " + num(reason);
  }
}

bool PdCap::supports_secure_channel() const {
  return std::any_of(caps.begin(), caps.end(), [](const Capability& c) {
    return c.function == 9 && (c.compliance & 0x01) != 0;
  });
}

ReplyResult parse_ack(ByteView d) {
  if (!d.empty()) return exact(reply::ack, d, 0);
  return {Ack{}, ""};
}

ReplyResult parse_busy(ByteView d) {
  if (!d.empty()) return exact(reply::busy, d, 0);
  return {Busy{}, ""};
}

ReplyResult parse_nak(ByteView d) {
  if (d.empty()) return bad(reply::nak, "no reason code");
  Nak n;
  n.reason = d[0];
  n.detail.assign(d.begin() + 1, d.end());
  return {n, ""};
}

ReplyResult parse_pdid(ByteView d) {
  if (d.size() != 12) return exact(reply::pdid, d, 12);
  PdId p;
  p.vendor_oui = static_cast<std::uint32_t>(d[0] | (d[1] << 8) | (d[2] << 16));
  p.model = d[3];
  p.version = d[4];
  p.serial = le32(d, 5);
  p.fw_major = d[9];
  p.fw_minor = d[10];
  p.fw_build = d[11];
  return {p, ""};
}

ReplyResult parse_pdcap(ByteView d) {
  if (d.empty() || d.size() % 3 != 0)
    return bad(reply::pdcap, num(d.size()) + " data bytes, expected a non-zero multiple of 3");
  PdCap p;
  for (std::size_t i = 0; i < d.size(); i += 3) p.caps.push_back({d[i], d[i + 1], d[i + 2]});
  return {p, ""};
}

ReplyResult parse_lstatr(ByteView d) {
  if (d.size() != 2) return exact(reply::lstatr, d, 2);
  if (d[0] > 1 || d[1] > 1)
    return bad(reply::lstatr, "status bytes must be 0 or 1, got " + hex8(d[0]) + " " + hex8(d[1]));
  return {LocalStatus{d[0] == 1, d[1] == 1}, ""};
}

namespace {
ReplyResult parse_status_list(std::uint8_t code, ByteView d, bool input) {
  if (d.empty()) return bad(code, "no status bytes");
  std::vector<bool> active;
  for (std::size_t i = 0; i < d.size(); ++i) {
    if (d[i] > 1) return bad(code, "status of point " + num(i) + " is " + hex8(d[i]) + ", not 0/1");
    active.push_back(d[i] == 1);
  }
  if (input) return {InputStatus{std::move(active)}, ""};
  return {OutputStatus{std::move(active)}, ""};
}
}  // namespace

ReplyResult parse_istatr(ByteView d) {
  return parse_status_list(reply::istatr, d, true);
}
ReplyResult parse_ostatr(ByteView d) {
  return parse_status_list(reply::ostatr, d, false);
}

ReplyResult parse_raw(ByteView d) {
  if (d.size() < 4) return bad(reply::raw, num(d.size()) + " data bytes, need at least 4");
  RawCard c;
  c.reader = d[0];
  c.format = d[1];
  c.bit_count = le16(d, 2);
  if (c.bit_count == 0) return bad(reply::raw, "bit count is 0");
  const std::size_t want = (static_cast<std::size_t>(c.bit_count) + 7) / 8;
  if (d.size() - 4 != want)
    return bad(reply::raw, num(c.bit_count) + " bits need " + num(want) + " data bytes, got " +
                               num(d.size() - 4));
  c.bits.assign(d.begin() + 4, d.end());
  return {c, ""};
}

ReplyResult parse_fmt(ByteView d) {
  if (d.size() < 3) return bad(reply::fmt, num(d.size()) + " data bytes, need at least 3");
  FormattedCard c;
  c.reader = d[0];
  c.direction = d[1];
  const std::size_t n = d[2];
  if (d.size() - 3 != n)
    return bad(reply::fmt, "character count " + num(n) + " but " + num(d.size() - 3) + " follow");
  if (c.direction > 1) return bad(reply::fmt, "read direction " + hex8(c.direction) + " unknown");
  for (std::size_t i = 3; i < d.size(); ++i) {
    if (d[i] < 0x20 || d[i] > 0x7E)
      return bad(reply::fmt, "character " + num(i - 3) + " is " + hex8(d[i]) + ", not printable");
    c.text.push_back(static_cast<char>(d[i]));
  }
  return {c, ""};
}

ReplyResult parse_keypad(ByteView d) {
  if (d.size() < 2) return bad(reply::keypad, num(d.size()) + " data bytes, need at least 2");
  Keypad k;
  k.reader = d[0];
  const std::size_t n = d[1];
  if (d.size() - 2 != n)
    return bad(reply::keypad, "digit count " + num(n) + " but " + num(d.size() - 2) + " follow");
  for (std::size_t i = 2; i < d.size(); ++i) {
    const std::uint8_t c = d[i];
    if (c >= '0' && c <= '9')
      k.keys.push_back(static_cast<char>(c));
    else if (c == 0x7F)
      k.keys.push_back('*');
    else if (c == 0x0D)
      k.keys.push_back('#');
    else
      return bad(reply::keypad, "key " + num(i - 2) + " is " + hex8(c) + ", not a keypad key");
  }
  return {k, ""};
}

ReplyResult parse_com(ByteView d) {
  if (d.size() != 5) return exact(reply::com, d, 5);
  return {ComSettings{d[0], le32(d, 1)}, ""};
}

ReplyResult parse_ccrypt(ByteView d) {
  if (d.size() != 32) return exact(reply::ccrypt, d, 32);
  ClientCryptogram c;
  std::copy(d.begin(), d.begin() + 8, c.client_uid.begin());
  std::copy(d.begin() + 8, d.begin() + 16, c.rnd_b.begin());
  std::copy(d.begin() + 16, d.end(), c.cryptogram.begin());
  return {c, ""};
}

ReplyResult parse_rmac_i(ByteView d) {
  if (d.size() != 16) return exact(reply::rmac_i, d, 16);
  InitialRMac m;
  std::copy(d.begin(), d.end(), m.rmac.begin());
  return {m, ""};
}

ReplyResult parse_reply(std::uint8_t code, ByteView d) {
  switch (code) {
    case reply::ack:
      return parse_ack(d);
    case reply::nak:
      return parse_nak(d);
    case reply::pdid:
      return parse_pdid(d);
    case reply::pdcap:
      return parse_pdcap(d);
    case reply::lstatr:
      return parse_lstatr(d);
    case reply::istatr:
      return parse_istatr(d);
    case reply::ostatr:
      return parse_ostatr(d);
    case reply::raw:
      return parse_raw(d);
    case reply::fmt:
      return parse_fmt(d);
    case reply::keypad:
      return parse_keypad(d);
    case reply::com:
      return parse_com(d);
    case reply::ccrypt:
      return parse_ccrypt(d);
    case reply::rmac_i:
      return parse_rmac_i(d);
    case reply::busy:
      return parse_busy(d);
    default:
      return {std::nullopt, "unsupported reply code " + hex8(code)};
  }
}

// --- Secure Channel primitives ---------------------------------------------------------------

SessionKeys derive_session_keys(const Key& scbk, const Random& rnd_a) {
  auto one = [&](std::uint8_t b0, std::uint8_t b1) {
    Block in{};
    in[0] = b0;
    in[1] = b1;
    std::copy(rnd_a.begin(), rnd_a.begin() + 6, in.begin() + 2);
    return ecb_block(scbk, in);
  };
  return {one(0x01, 0x82), one(0x01, 0x01), one(0x01, 0x02)};
}

namespace {
Block cryptogram(const Key& s_enc, const Random& first, const Random& second) {
  Block in{};
  std::copy(first.begin(), first.end(), in.begin());
  std::copy(second.begin(), second.end(), in.begin() + 8);
  return ecb_block(s_enc, in);
}
}  // namespace

Block client_cryptogram(const SessionKeys& k, const Random& rnd_a, const Random& rnd_b) {
  return cryptogram(k.s_enc, rnd_a, rnd_b);
}

Block server_cryptogram(const SessionKeys& k, const Random& rnd_a, const Random& rnd_b) {
  return cryptogram(k.s_enc, rnd_b, rnd_a);
}

Block initial_rmac(const SessionKeys& k, const Block& sc) {
  return ecb_block(k.s_mac2, ecb_block(k.s_mac1, sc));
}

Block compute_mac(const SessionKeys& k, const Block& iv, ByteView message) {
  Bytes buf(message.begin(), message.end());
  if (buf.empty() || buf.size() % 16 != 0) {
    buf.push_back(0x80);
    while (buf.size() % 16 != 0) buf.push_back(0x00);
  }
  Block chain = iv;
  if (buf.size() > 16) {
    const Bytes head = aes(true, k.s_mac1, &chain, ByteView(buf).first(buf.size() - 16));
    std::copy(head.end() - 16, head.end(), chain.begin());
  }
  const Bytes last = aes(true, k.s_mac2, &chain, ByteView(buf).last(16));
  Block mac{};
  std::copy(last.begin(), last.end(), mac.begin());
  return mac;
}

Bytes encrypt_data(const Key& s_enc, const Block& last_mac, ByteView plaintext) {
  Bytes buf(plaintext.begin(), plaintext.end());
  buf.push_back(0x80);
  while (buf.size() % 16 != 0) buf.push_back(0x00);
  const Block iv = complement(last_mac);
  return aes(true, s_enc, &iv, buf);
}

DecryptResult decrypt_data(const Key& s_enc, const Block& last_mac, ByteView ciphertext) {
  if (ciphertext.empty() || ciphertext.size() % 16 != 0)
    return {std::nullopt, "encrypted data of " + num(ciphertext.size()) +
                              " bytes is not a whole number of "
                              "16-byte blocks"};
  const Block iv = complement(last_mac);
  Bytes p = aes(false, s_enc, &iv, ciphertext);
  // Strip the padding: zeros, then the 0x80 marker, which must lie in the last block.
  std::size_t n = p.size();
  while (n > 0 && p[n - 1] == 0x00 && p.size() - n < 16) --n;
  if (n == 0 || p[n - 1] != 0x80 || p.size() - n >= 16)
    return {std::nullopt, "decrypted data has no 0x80 padding marker (wrong key or IV)"};
  p.resize(n - 1);
  return {std::move(p), ""};
}

bool equal_ct(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ b[i]);
  return diff == 0;
}

// --- SecureChannel ------------------------------------------------------------------------------

std::string_view to_string(SecureChannel::State s) {
  switch (s) {
    case SecureChannel::State::idle:
      return "idle";
    case SecureChannel::State::awaiting_ccrypt:
      return "awaiting_ccrypt";
    case SecureChannel::State::awaiting_rmac_i:
      return "awaiting_rmac_i";
    case SecureChannel::State::active:
      return "active";
    case SecureChannel::State::failed:
      return "failed";
  }
  return "unknown";
}

SecureChannel::SecureChannel(const Key& scbk, bool use_scbk_d, Role role)
    : scbk_(use_scbk_d ? kScbkD : scbk), use_scbk_d_(use_scbk_d), role_(role) {}

void SecureChannel::reset() {
  wipe(&keys_, sizeof keys_);
  wipe(rnd_a_.data(), rnd_a_.size());
  wipe(rnd_b_.data(), rnd_b_.size());
  wipe(server_cryptogram_.data(), server_cryptogram_.size());
  wipe(last_rx_mac_.data(), last_rx_mac_.size());
  wipe(last_tx_mac_.data(), last_tx_mac_.size());
  state_ = State::idle;
  error_.clear();
}

std::string SecureChannel::fail(std::string why) {
  reset();
  state_ = State::failed;
  error_ = why;
  return why;
}

EncodeResult SecureChannel::fail_encode(std::string why) {
  return {{}, fail(std::move(why))};
}

EncodeResult SecureChannel::start(std::uint8_t address, std::uint8_t sqn, const Random& rnd_a) {
  if (role_ != Role::control_panel) return {{}, "start(): only a control panel starts a session"};
  reset();
  rnd_a_ = rnd_a;
  const Command c = challenge(rnd_a);
  EncodeResult r = encode_command(
      address, sqn, c.code, c.data,
      {.crc = true,
       .scb = SecurityBlock{scs::chlng, {static_cast<std::uint8_t>(use_scbk_d_ ? 0 : 1)}}});
  if (r.error.empty()) state_ = State::awaiting_ccrypt;
  return r;
}

std::string SecureChannel::accept_ccrypt(const Frame& f) {
  if (role_ != Role::control_panel || state_ != State::awaiting_ccrypt)
    return fail("osdp_CCRYPT unexpected in state " + std::string(to_string(state_)));
  if (!f.from_pd || f.code != reply::ccrypt) {
    if (f.from_pd && f.code == reply::nak && !f.data.empty())
      return fail("osdp_CHLNG refused: NAK " + nak_reason_text(f.data[0]));
    return fail("expected osdp_CCRYPT, got " + reply_name(f.code));
  }
  if (!f.scb || f.scb->type != scs::ccrypt) return fail("osdp_CCRYPT without security block 0x12");
  auto parsed = parse_ccrypt(f.data);
  if (!parsed.reply) return fail(parsed.error);
  const auto& cc = std::get<ClientCryptogram>(*parsed.reply);
  rnd_b_ = cc.rnd_b;
  keys_ = derive_session_keys(scbk_, rnd_a_);
  const Block want = client_cryptogram(keys_, rnd_a_, rnd_b_);
  if (!equal_ct(want, cc.cryptogram))
    return fail(std::string("client cryptogram mismatch: the PD uses another key than ") +
                (use_scbk_d_ ? "SCBK-D" : "the installed SCBK"));
  server_cryptogram_ = server_cryptogram(keys_, rnd_a_, rnd_b_);
  state_ = State::awaiting_rmac_i;
  return "";
}

EncodeResult SecureChannel::scrypt(std::uint8_t address, std::uint8_t sqn) {
  if (role_ != Role::control_panel || state_ != State::awaiting_rmac_i)
    return {{}, "scrypt(): no accepted osdp_CCRYPT (state " + std::string(to_string(state_)) + ")"};
  const Command c = server_cryptogram_cmd(server_cryptogram_);
  return encode_command(
      address, sqn, c.code, c.data,
      {.crc = true,
       .scb = SecurityBlock{scs::scrypt, {static_cast<std::uint8_t>(use_scbk_d_ ? 0 : 1)}}});
}

std::string SecureChannel::accept_rmac_i(const Frame& f) {
  if (role_ != Role::control_panel || state_ != State::awaiting_rmac_i)
    return fail("osdp_RMAC_I unexpected in state " + std::string(to_string(state_)));
  if (!f.from_pd || f.code != reply::rmac_i) {
    if (f.from_pd && f.code == reply::nak && !f.data.empty())
      return fail("osdp_SCRYPT refused: NAK " + nak_reason_text(f.data[0]));
    return fail("expected osdp_RMAC_I, got " + reply_name(f.code));
  }
  if (!f.scb || f.scb->type != scs::rmac_i) return fail("osdp_RMAC_I without security block 0x14");
  if (!f.scb->data.empty() && f.scb->data[0] == 0xFF)
    return fail("the PD refused the server cryptogram");
  auto parsed = parse_rmac_i(f.data);
  if (!parsed.reply) return fail(parsed.error);
  const Block want = initial_rmac(keys_, server_cryptogram_);
  if (!equal_ct(want, std::get<InitialRMac>(*parsed.reply).rmac))
    return fail("initial R-MAC mismatch");
  last_rx_mac_ = want;  // IV of the first command's MAC
  state_ = State::active;
  return "";
}

EncodeResult SecureChannel::answer_chlng(const Frame& f, const ClientUid& uid,
                                         const Random& rnd_b) {
  if (role_ != Role::peripheral) return {{}, "answer_chlng(): only a peripheral answers"};
  reset();
  if (f.from_pd || f.code != cmd::chlng || !f.scb || f.scb->type != scs::chlng)
    return fail_encode("expected osdp_CHLNG with security block 0x11");
  if (f.data.size() != 8)
    return fail_encode("osdp_CHLNG: " + num(f.data.size()) + " data bytes, expected 8");
  std::copy(f.data.begin(), f.data.end(), rnd_a_.begin());
  rnd_b_ = rnd_b;
  keys_ = derive_session_keys(scbk_, rnd_a_);
  Bytes data(uid.begin(), uid.end());
  data.insert(data.end(), rnd_b.begin(), rnd_b.end());
  const Block cc = client_cryptogram(keys_, rnd_a_, rnd_b_);
  data.insert(data.end(), cc.begin(), cc.end());
  state_ = State::awaiting_ccrypt;  // for a PD: waiting for osdp_SCRYPT
  return encode_reply(
      f.address, f.sqn, reply::ccrypt, data,
      {.crc = true,
       .scb = SecurityBlock{scs::ccrypt, {static_cast<std::uint8_t>(use_scbk_d_ ? 0 : 1)}}});
}

EncodeResult SecureChannel::answer_scrypt(const Frame& f) {
  if (role_ != Role::peripheral || state_ != State::awaiting_ccrypt)
    return {{}, "answer_scrypt(): no osdp_CHLNG answered"};
  if (f.from_pd || f.code != cmd::scrypt || !f.scb || f.scb->type != scs::scrypt)
    return fail_encode("expected osdp_SCRYPT with security block 0x13");
  const Block want = server_cryptogram(keys_, rnd_a_, rnd_b_);
  if (f.data.size() != 16 || !equal_ct(want, f.data))
    return fail_encode("server cryptogram mismatch");
  const Block rmac = initial_rmac(keys_, want);
  last_tx_mac_ = rmac;
  state_ = State::active;
  return encode_reply(f.address, f.sqn, reply::rmac_i, rmac,
                      {.crc = true, .scb = SecurityBlock{scs::rmac_i, {0x01}}});
}

EncodeResult SecureChannel::wrap(std::uint8_t address, std::uint8_t sqn, std::uint8_t code,
                                 ByteView data) {
  if (state_ != State::active) return {{}, "Secure Channel not active"};
  if (address > kBroadcast) return {{}, "address " + num(address) + " out of range (0..127)"};
  const bool cp = role_ == Role::control_panel;
  const bool enc = !data.empty();
  const SecurityBlock sb{static_cast<std::uint8_t>(cp ? (enc ? scs::cmd_enc : scs::cmd_mac)
                                                      : (enc ? scs::reply_enc : scs::reply_mac)),
                         {}};
  const Bytes payload = enc ? encrypt_data(keys_.s_enc, last_rx_mac_, data) : Bytes{};
  const auto addr_byte = static_cast<std::uint8_t>(cp ? address : (address | kReplyFlag));
  EncodeResult r = build_head({addr_byte, sqn, true, &sb, code, payload, true});
  if (!r.error.empty()) return r;
  const Block mac = compute_mac(keys_, last_rx_mac_, r.bytes);
  last_tx_mac_ = mac;
  r.bytes.insert(r.bytes.end(), mac.begin(), mac.begin() + 4);
  append_check(r.bytes, true);
  return r;
}

SecureChannel::OpenResult SecureChannel::unwrap(const Frame& f) {
  if (state_ != State::active) return {std::nullopt, "Secure Channel not active"};
  const bool cp = role_ == Role::control_panel;
  if (f.from_pd != cp)
    return {std::nullopt, fail(cp ? "a command where a reply was expected"
                                  : "a reply where a command was expected")};
  if (!f.scb) {
    if (cp && f.code == reply::busy && f.data.empty()) return {Opened{f.code, {}, false}, ""};
    std::string why = "plaintext " + (cp ? reply_name(f.code) : command_name(f.code)) +
                      " while the Secure Channel is active";
    if (cp && f.code == reply::nak && !f.data.empty())
      why += " (NAK: " + nak_reason_text(f.data[0]) + ")";
    return {std::nullopt, fail(why)};
  }
  const std::uint8_t mac_type = cp ? scs::reply_mac : scs::cmd_mac;
  const std::uint8_t enc_type = cp ? scs::reply_enc : scs::cmd_enc;
  if ((f.scb->type != mac_type && f.scb->type != enc_type) || !f.mac)
    return {std::nullopt,
            fail("security block type " + hex8(f.scb->type) + " not allowed in an active session")};
  // The MAC covers SOM .. last data byte: everything before the MAC and the check characters.
  const std::size_t check = f.crc ? 2 : 1;
  if (f.raw.size() < check + 4) return {std::nullopt, fail("frame too short for a MAC")};
  const std::size_t mac_at = f.raw.size() - check - 4;
  const Block mac = compute_mac(keys_, last_tx_mac_, ByteView(f.raw).first(mac_at));
  if (!equal_ct(ByteView(mac).first(4), *f.mac))
    return {std::nullopt,
            fail("MAC mismatch on " + (cp ? reply_name(f.code) : command_name(f.code)))};
  Opened o{f.code, {}, true};
  if (f.scb->type == enc_type) {
    // IV: complement of the MAC we sent last (the one this message answers).
    auto d = decrypt_data(keys_.s_enc, last_tx_mac_, f.data);
    if (!d.plaintext) return {std::nullopt, fail(d.error)};
    o.data = std::move(*d.plaintext);
  } else {
    o.data = f.data;
  }
  last_rx_mac_ = mac;
  return {std::move(o), ""};
}

}  // namespace anju::drivers::osdp
