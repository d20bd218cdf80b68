// OSDP v2.2 (IEC 60839-11-5), Control Panel side: the pure, I/O-free part.
// Frame codec, a FrameReader that cuts a serial byte stream into frames, command builders, typed
// reply parsers and the Secure Channel (AES-128, OpenSSL libcrypto). Nothing here reads a port,
// a clock or a random source: the driver that owns the serial line passes bytes and random
// numbers in and gets bytes, frames or a clear error out.
// Thread: plain values and single-owner objects (one FrameReader and one SecureChannel per
// reader bus address, used by the thread that owns the serial port).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace anju::drivers::osdp {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using Key = std::array<std::uint8_t, 16>;    // AES-128 key (SCBK, S-ENC, S-MAC1, S-MAC2)
using Block = std::array<std::uint8_t, 16>;  // one AES block (MACs, cryptograms)
using Random = std::array<std::uint8_t, 8>;  // RND.A (CP) / RND.B (PD)
using ClientUid = std::array<std::uint8_t, 8>;

inline constexpr std::uint8_t kSom = 0x53;
inline constexpr std::uint8_t kBroadcast = 0x7F;  // address every PD answers
inline constexpr std::uint8_t kReplyFlag = 0x80;  // ADDR bit 7: frame comes from the PD
// Largest frame accepted (the LEN field allows 65535; PDs declare far smaller receive buffers).
inline constexpr std::size_t kMaxFrameBytes = 1536;
// Smallest possible frames: SOM ADDR LEN LEN CTRL CODE + checksum (1) or CRC (2).
inline constexpr std::size_t kMinFrameChecksum = 7;
inline constexpr std::size_t kMinFrameCrc = 8;

// Command codes (CP -> PD) used by Anju.
namespace cmd {
inline constexpr std::uint8_t poll = 0x60, id = 0x61, cap = 0x62, lstat = 0x64, istat = 0x65,
                              ostat = 0x66, out = 0x68, led = 0x69, buz = 0x6A, comset = 0x6E,
                              keyset = 0x75, chlng = 0x76, scrypt = 0x77;
}  // namespace cmd
// Reply codes (PD -> CP).
namespace reply {
inline constexpr std::uint8_t ack = 0x40, nak = 0x41, pdid = 0x45, pdcap = 0x46, lstatr = 0x48,
                              istatr = 0x49, ostatr = 0x4A, raw = 0x50, fmt = 0x51, keypad = 0x53,
                              com = 0x54, ccrypt = 0x76, rmac_i = 0x78, busy = 0x79;
}  // namespace reply
// "osdp_POLL", "osdp_PDID", ...; "unknown 0x.." otherwise.
std::string command_name(std::uint8_t code);
std::string reply_name(std::uint8_t code);

// Security control block types (SEC_BLK_TYPE).
namespace scs {
inline constexpr std::uint8_t chlng = 0x11;      // CP: osdp_CHLNG; data: 0 = SCBK-D, 1 = SCBK
inline constexpr std::uint8_t ccrypt = 0x12;     // PD: osdp_CCRYPT; data: key used
inline constexpr std::uint8_t scrypt = 0x13;     // CP: osdp_SCRYPT; data: key used
inline constexpr std::uint8_t rmac_i = 0x14;     // PD: osdp_RMAC_I; data: 1 accepted, 0xFF refused
inline constexpr std::uint8_t cmd_mac = 0x15;    // CP: MAC, data in clear (or no data)
inline constexpr std::uint8_t reply_mac = 0x16;  // PD: MAC, data in clear (or no data)
inline constexpr std::uint8_t cmd_enc = 0x17;    // CP: MAC, data encrypted
inline constexpr std::uint8_t reply_enc = 0x18;  // PD: MAC, data encrypted
}  // namespace scs
// True for the types that carry a 4-byte MAC after the data (0x15..0x18).
bool scb_has_mac(std::uint8_t scb_type);

// ---------------------------------------------------------------------------------------------
// Check characters

// CRC-16/AUG-CCITT as OSDP uses it: poly 0x1021, init 0x1D0F, not reflected, no final xor.
// Sent little-endian after the message.
std::uint16_t crc16(ByteView bytes);
// Two's complement of the 8-bit sum of the bytes.
std::uint8_t checksum(ByteView bytes);

// ---------------------------------------------------------------------------------------------
// Frames

struct SecurityBlock {
  std::uint8_t type = 0;  // scs::*
  Bytes data;             // after SEC_BLK_LEN and SEC_BLK_TYPE (0..1 bytes in practice)
  bool operator==(const SecurityBlock&) const = default;
};

struct Frame {
  std::uint8_t address = 0;          // 0..0x7F (bit 7 of ADDR is `from_pd`)
  bool from_pd = false;              // ADDR bit 7 set: a reply
  std::uint8_t sqn = 0;              // CTRL bits 0-1
  bool crc = true;                   // CTRL bit 2: CRC-16, else 8-bit checksum
  std::optional<SecurityBlock> scb;  // present when CTRL bit 3 is set
  std::uint8_t code = 0;             // command or reply code
  Bytes data;                        // as on the wire (still encrypted for SCB 0x17/0x18)
  std::optional<std::array<std::uint8_t, 4>> mac;  // SCB types 0x15..0x18
  Bytes raw;                                       // the whole frame, SOM .. check character(s)
};

struct FrameResult {
  std::optional<Frame> frame;
  std::string error;  // empty when frame is set
};
// Decodes exactly one frame (bytes[0] must be SOM; no bytes may follow the frame). Errors name
// the problem: "bad SOM 0x12 (expected 0x53)", "truncated: 9 of 12 bytes",
// "CRC mismatch: frame has 0x1234, computed 0x66c0", "security block length 9 exceeds the
// frame", ...
FrameResult decode_frame(ByteView bytes);

struct EncodeOptions {
  bool crc = true;                   // false: 8-bit checksum
  std::optional<SecurityBlock> scb;  // plain security block (handshake); MACed frames are
                                     // built by SecureChannel::wrap
};
struct EncodeResult {
  Bytes bytes;
  std::string error;  // non-empty: nothing was encoded (address > 0x7F, sqn > 3, too long ...)
};
// A command frame (ADDR bit 7 clear) for address 0..0x7F (0x7F broadcast), sqn 0..3.
EncodeResult encode_command(std::uint8_t address, std::uint8_t sqn, std::uint8_t code,
                            ByteView data, const EncodeOptions& options = {});
// A reply frame (ADDR bit 7 set), for PD simulators and tests.
EncodeResult encode_reply(std::uint8_t address, std::uint8_t sqn, std::uint8_t code, ByteView data,
                          const EncodeOptions& options = {});

// Next sequence number after `sqn` for a CP: 1, 2, 3, 1, ... (0 only restarts a link).
std::uint8_t next_sqn(std::uint8_t sqn);

// Cuts a byte stream (arbitrary chunks from a serial port) into frames. Bytes before a SOM are
// skipped (the 0xFF mark byte and line noise), a candidate that fails to decode is reported once
// and the reader resynchronises on the next SOM after the bad candidate's SOM byte (a corrupted
// LEN must not swallow the next good frame). While resynchronising, further failed candidates
// are counted as skipped, not reported again, until a good frame arrives. A candidate whose LEN
// promises more bytes than have arrived is kept until they do: call reset() when the reply
// timeout expires.
class FrameReader {
 public:
  explicit FrameReader(std::size_t max_frame_bytes = kMaxFrameBytes);
  // Returns what the bytes completed, in order: frames, and one error per loss of sync.
  std::vector<FrameResult> feed(ByteView chunk);
  void reset();
  std::size_t buffered() const { return buf_.size(); }
  std::uint64_t skipped_bytes() const { return skipped_; }  // bytes dropped outside frames
  std::uint64_t bad_frames() const { return bad_frames_; }  // candidates that failed to decode

 private:
  std::size_t max_;
  Bytes buf_;
  bool resyncing_ = false;
  std::uint64_t skipped_ = 0;
  std::uint64_t bad_frames_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Commands (CP -> PD). Builders give the code and data; encode_command or SecureChannel::wrap
// frame them.

struct Command {
  std::uint8_t code = 0;
  Bytes data;
  bool operator==(const Command&) const = default;
};

Command poll();
Command id_report();      // osdp_ID, "send standard PD ID block" (data 0x00)
Command capabilities();   // osdp_CAP (data 0x00)
Command local_status();   // osdp_LSTAT
Command input_status();   // osdp_ISTAT
Command output_status();  // osdp_OSTAT

struct OutputControl {
  std::uint8_t output = 0;
  // 0 nop, 1 permanent off (abort timed), 2 permanent on (abort timed), 3 permanent off (allow
  // timed to complete), 4 permanent on (allow timed), 5 temporary on then off, 6 temporary off
  // then on
  std::uint8_t control = 0;
  std::uint16_t timer_100ms = 0;  // for 5 and 6, units of 100 ms
};
Command output(const std::vector<OutputControl>& outputs);

struct LedSettings {
  std::uint8_t control = 0;   // temporary: 0 nop, 1 cancel, 2 set; permanent: 0 nop, 1 set
  std::uint8_t on_100ms = 0;  // on time, units of 100 ms
  std::uint8_t off_100ms = 0;
  std::uint8_t on_color = 0;  // 0 black, 1 red, 2 green, 3 amber, 4 blue, 5 magenta, ...
  std::uint8_t off_color = 0;
  std::uint16_t timer_100ms = 0;  // temporary only
};
struct LedControl {
  std::uint8_t reader = 0;
  std::uint8_t led = 0;
  LedSettings temporary;
  LedSettings permanent;  // timer_100ms unused
};
Command led(const std::vector<LedControl>& leds);  // 14 bytes each

struct BuzzerControl {
  std::uint8_t reader = 0;
  std::uint8_t tone = 0;  // 0 no tone, 1 off, 2 default tone
  std::uint8_t on_100ms = 0;
  std::uint8_t off_100ms = 0;
  std::uint8_t count = 0;  // 0 = until changed
};
Command buzzer(const BuzzerControl& b);

struct CommandResult {
  std::optional<Command> command;
  std::string error;
};
// osdp_COMSET: new address 0..0x7E, new baud rate (9600, 19200, 38400, 57600, 115200, 230400).
CommandResult comset(std::uint8_t new_address, std::uint32_t baud);
// osdp_KEYSET with a new SCBK (key type 1, 16 bytes). Only ever sent inside a Secure Channel.
Command keyset(const Key& scbk);
// osdp_CHLNG / osdp_SCRYPT: the handshake frames need their security block; SecureChannel
// builds them (start(), scrypt()).
Command challenge(const Random& rnd_a);
Command server_cryptogram_cmd(const Block& server_cryptogram);

// ---------------------------------------------------------------------------------------------
// Replies (PD -> CP)

struct Ack {};
struct Busy {};
struct Nak {
  std::uint8_t reason = 0;
  Bytes detail;  // optional extra bytes after the reason
};
// 1 "message check character(s) error (bad checksum or CRC)", 2 "command length error",
// 3 "unknown command code", 4 "unexpected sequence number", 5 "security block not supported",
// 6 "communication security conditions not met (encryption required)", 7 "BIO_TYPE not
// supported", 8 "BIO_FORMAT not supported", 9 "unable to process command record";
// 0 "no error", others "unknown NAK reason N".
std::string nak_reason_text(std::uint8_t reason);

struct PdId {
  std::uint32_t vendor_oui = 0;  // IEEE OUI, 3 bytes (first byte least significant)
  std::uint8_t model = 0;
  std::uint8_t version = 0;
  std::uint32_t serial = 0;  // 4 bytes, little-endian
  std::uint8_t fw_major = 0, fw_minor = 0, fw_build = 0;
};
struct Capability {
  std::uint8_t function = 0;  // 1 contact status monitoring ... 9 communication security, ...
  std::uint8_t compliance = 0;
  std::uint8_t items = 0;
};
struct PdCap {
  std::vector<Capability> caps;
  // Function 9 (communication security) with compliance bit 0: the PD supports AES-128.
  bool supports_secure_channel() const;
};
struct LocalStatus {
  bool tamper = false;         // tamper switch active
  bool power_failure = false;  // power supply fault
};
struct InputStatus {
  std::vector<bool> active;  // per input, 0-based
};
struct OutputStatus {
  std::vector<bool> active;
};
struct RawCard {
  std::uint8_t reader = 0;
  std::uint8_t format = 0;  // 0 raw (unspecified), 1 Wiegand
  std::uint16_t bit_count = 0;
  Bytes bits;  // (bit_count + 7) / 8 bytes, first bit in the MSB of bits[0]
};
struct FormattedCard {
  std::uint8_t reader = 0;
  std::uint8_t direction = 0;  // 0 forward, 1 reverse
  std::string text;            // the characters as sent (printable ASCII checked)
};
struct Keypad {
  std::uint8_t reader = 0;
  // Keys as text: '0'..'9', '*' (sent as 0x7F), '#' (sent as 0x0D), others as sent. These are
  // secrets (PINs): never log or journal them, only their count.
  std::string keys;
};
struct ComSettings {
  std::uint8_t address = 0;
  std::uint32_t baud = 0;
};
struct ClientCryptogram {  // osdp_CCRYPT
  ClientUid client_uid{};
  Random rnd_b{};
  Block cryptogram{};
};
struct InitialRMac {  // osdp_RMAC_I
  Block rmac{};
};

using Reply = std::variant<Ack, Nak, PdId, PdCap, LocalStatus, InputStatus, OutputStatus, RawCard,
                           FormattedCard, Keypad, ComSettings, ClientCryptogram, InitialRMac, Busy>;
struct ReplyResult {
  std::optional<Reply> reply;
  std::string error;  // e.g. "osdp_PDID: 11 data bytes, expected 12"
};
// Parses the data of a reply with the given code (already decrypted when it came through a
// Secure Channel). Unknown codes are an error naming the code.
ReplyResult parse_reply(std::uint8_t code, ByteView data);
ReplyResult parse_ack(ByteView data);
ReplyResult parse_nak(ByteView data);
ReplyResult parse_pdid(ByteView data);
ReplyResult parse_pdcap(ByteView data);
ReplyResult parse_lstatr(ByteView data);
ReplyResult parse_istatr(ByteView data);
ReplyResult parse_ostatr(ByteView data);
ReplyResult parse_raw(ByteView data);
ReplyResult parse_fmt(ByteView data);
ReplyResult parse_keypad(ByteView data);
ReplyResult parse_com(ByteView data);
ReplyResult parse_ccrypt(ByteView data);
ReplyResult parse_rmac_i(ByteView data);
ReplyResult parse_busy(ByteView data);

// ---------------------------------------------------------------------------------------------
// Secure Channel primitives (AES-128 via OpenSSL EVP). Exposed for tests and simulators.

// SCBK-D, the default key of an uninstalled PD: 0x30 0x31 ... 0x3F.
inline constexpr Key kScbkD{0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
                            0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F};

struct SessionKeys {
  Key s_enc{};
  Key s_mac1{};
  Key s_mac2{};
};
// S-ENC = AES-ECB(SCBK, 01 82 RND.A[0..5] 00*8); S-MAC1 with 01 01, S-MAC2 with 01 02.
SessionKeys derive_session_keys(const Key& scbk, const Random& rnd_a);
// Client cryptogram (PD, in osdp_CCRYPT) = AES-ECB(S-ENC, RND.A || RND.B).
Block client_cryptogram(const SessionKeys& k, const Random& rnd_a, const Random& rnd_b);
// Server cryptogram (CP, in osdp_SCRYPT) = AES-ECB(S-ENC, RND.B || RND.A).
Block server_cryptogram(const SessionKeys& k, const Random& rnd_a, const Random& rnd_b);
// Initial R-MAC = AES-ECB(S-MAC2, AES-ECB(S-MAC1, server cryptogram)).
Block initial_rmac(const SessionKeys& k, const Block& server_cryptogram);
// MAC of a message: AES-CBC with S-MAC1 from IV = the previous MAC of the other side, the last
// block with S-MAC2; a message that is not a whole number of blocks is padded with 0x80 00...
Block compute_mac(const SessionKeys& k, const Block& iv, ByteView message);
// Data encryption: AES-CBC(S-ENC, IV = bitwise complement of `last_mac`), always padded with
// 0x80 then zeros to a whole number of blocks.
Bytes encrypt_data(const Key& s_enc, const Block& last_mac, ByteView plaintext);
struct DecryptResult {
  std::optional<Bytes> plaintext;
  std::string error;
};
DecryptResult decrypt_data(const Key& s_enc, const Block& last_mac, ByteView ciphertext);
// Constant-time comparison.
bool equal_ct(ByteView a, ByteView b);

// ---------------------------------------------------------------------------------------------
// Secure Channel session (pure state: the caller passes random numbers in; no I/O, no clock).
//
// CP handshake:  start() -> osdp_CHLNG;  accept_ccrypt(reply) verifies the client cryptogram;
//                scrypt() -> osdp_SCRYPT;  accept_rmac_i(reply) -> active.
// Session:       wrap() builds MACed (and, with data, encrypted) commands; unwrap() checks and
//                opens replies.
// Any failure (wrong key, bad cryptogram, MAC mismatch, a plaintext reply while active) moves
// the session to `failed` and wipes the keys: the caller reports security_fault and starts a new
// handshake. There is no fallback to plaintext here; only osdp_BUSY, which the standard sends
// unsecured and which carries no data, passes unwrap() without a MAC.
//
// The peripheral role (answer_chlng, answer_scrypt, and wrap/unwrap the other way round) exists
// for PD simulators and tests.
class SecureChannel {
 public:
  enum class Role { control_panel, peripheral };
  enum class State { idle, awaiting_ccrypt, awaiting_rmac_i, active, failed };

  // `scbk` is the PD's installed key, or kScbkD with `use_scbk_d` (install mode).
  explicit SecureChannel(const Key& scbk, bool use_scbk_d = false, Role role = Role::control_panel);

  State state() const { return state_; }
  bool active() const { return state_ == State::active; }
  const std::string& last_error() const { return error_; }
  void reset();  // back to idle, keys and MACs wiped

  // --- control panel ---
  // The osdp_CHLNG frame (SCB 0x11) with the caller's RND.A. Any previous session is dropped.
  EncodeResult start(std::uint8_t address, std::uint8_t sqn, const Random& rnd_a);
  // Checks an osdp_CCRYPT reply frame (SCB 0x12): derives the session keys, verifies the client
  // cryptogram. "" when accepted, else the reason (the session is failed).
  std::string accept_ccrypt(const Frame& reply);
  // The osdp_SCRYPT frame (SCB 0x13) carrying the server cryptogram; needs accept_ccrypt first.
  EncodeResult scrypt(std::uint8_t address, std::uint8_t sqn);
  // Checks an osdp_RMAC_I reply (SCB 0x14): the PD's acceptance and its initial R-MAC.
  std::string accept_rmac_i(const Frame& reply);

  // --- peripheral (simulators, tests) ---
  EncodeResult answer_chlng(const Frame& command, const ClientUid& uid, const Random& rnd_b);
  EncodeResult answer_scrypt(const Frame& command);

  // --- session, both roles ---
  // A MACed frame: SCB 0x15/0x16 without data, 0x17/0x18 with the data encrypted.
  EncodeResult wrap(std::uint8_t address, std::uint8_t sqn, std::uint8_t code, ByteView data);
  EncodeResult wrap(std::uint8_t address, std::uint8_t sqn, const Command& c) {
    return wrap(address, sqn, c.code, c.data);
  }
  struct Opened {
    std::uint8_t code = 0;
    Bytes data;           // decrypted
    bool secured = true;  // false only for an unsecured osdp_BUSY
  };
  struct OpenResult {
    std::optional<Opened> message;
    std::string error;
  };
  // Verifies the MAC of a frame from the other side and decrypts its data.
  OpenResult unwrap(const Frame& frame);

  const SessionKeys& keys() const { return keys_; }  // for tests

 private:
  std::string fail(std::string why);
  EncodeResult fail_encode(std::string why);

  Key scbk_;
  bool use_scbk_d_;
  Role role_;
  State state_ = State::idle;
  std::string error_;
  Random rnd_a_{};
  Random rnd_b_{};
  SessionKeys keys_{};
  Block server_cryptogram_{};
  Block last_rx_mac_{};  // the other side's last MAC (IV for our next MAC)
  Block last_tx_mac_{};  // our last MAC (IV for the other side's next MAC)
};
std::string_view to_string(SecureChannel::State s);

}  // namespace anju::drivers::osdp
