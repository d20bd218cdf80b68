// `anju provision identity | key | cert` (issue 9). The config is edited with set_config_values
// (config_edit.cpp); keys, requests and certificates with OpenSSL 3's EVP and X509 APIs. Nothing
// is written before everything has been checked, and each file is written atomically (a temp file
// beside it, fsynced, renamed over, the directory fsynced), so an interrupted run leaves either the
// old file or the new one.
#include "anju/firmware/provision.hpp"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "anju/bridge/identifiers.hpp"
#include "anju/firmware/config.hpp"

namespace anju::firmware {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

constexpr const char* kDefaultConfig = "/etc/anju/anju.yaml";
constexpr const char* kKeyName = "gateway.key";
constexpr const char* kCsrName = "gateway.csr";
constexpr const char* kCertName = "gateway.crt";
constexpr const char* kOrganization = "Anju gateway";

// A failure: what is wrong, how to fix it, and the exit code (1 failed, 2 bad usage).
struct Failure : std::runtime_error {
  Failure(int c, const std::string& what, std::string how)
      : std::runtime_error(what), code(c), fix(std::move(how)) {}
  int code;
  std::string fix;
};

[[noreturn]] void failed(const std::string& what, const std::string& fix = {}) {
  throw Failure(1, what, fix);
}
[[noreturn]] void usage(const std::string& what, const std::string& fix = {}) {
  throw Failure(2, what, fix);
}

// What a run reports: lines for people, fields for --json.
struct Report {
  std::vector<std::string> lines;
  std::vector<std::string> notes;
  ordered_json j = ordered_json::object();
};

// --- Files
// ----------------------------------------------------------------------------------------

std::string errno_text(int e) {
  return std::strerror(e);
}

std::optional<std::string> read_text(const std::string& path, int* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return std::nullopt;
  }
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *err = errno;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 16u * 1024 * 1024) {
      *err = EFBIG;
      ::close(fd);
      return std::nullopt;
    }
  }
  ::close(fd);
  return out;
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string dir_of(const std::string& path) {
  const auto d = fs::path(path).parent_path();
  return d.empty() ? std::string(".") : d.string();
}

struct Owner {
  uid_t uid;
  gid_t gid;
};

// Writes `data` to a new temp file beside `path` (mode, owner), fsyncs it, and renames it over
// `path` (or, with `exclusive`, links it there, failing if `path` exists: never replaced).
void write_atomic(const std::string& path, const std::string& data, mode_t mode,
                  std::optional<Owner> owner, bool exclusive = false) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    failed("cannot create " + tmp + ": " + errno_text(errno),
           "run as root, or as the owner of " + dir_of(path));
  std::string why;
  if (owner && ::fchown(fd, owner->uid, owner->gid) != 0)
    why = "cannot give " + tmp + " its owner: " + errno_text(errno);
  if (why.empty() && ::fchmod(fd, mode) != 0)
    why = "cannot set the mode of " + tmp + ": " + errno_text(errno);
  for (std::size_t done = 0; why.empty() && done < data.size();) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      why = "cannot write " + tmp + ": " + errno_text(errno);
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  if (why.empty() && ::fsync(fd) != 0) why = "cannot fsync " + tmp + ": " + errno_text(errno);
  ::close(fd);
  if (why.empty()) {
    if (exclusive) {
      if (::link(tmp.c_str(), path.c_str()) != 0)
        why = "cannot create " + path + ": " + errno_text(errno);
      ::unlink(tmp.c_str());
    } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
      why = "cannot rename " + tmp + " to " + path + ": " + errno_text(errno);
    }
  }
  if (!why.empty()) {
    ::unlink(tmp.c_str());
    failed(why);
  }
  fsync_dir(dir_of(path));
}

// The owner of the files written: --owner when run as root (nothing otherwise: they belong to
// whoever runs it).
std::optional<Owner> file_owner(const std::string& name) {
  if (::geteuid() != 0 || name.empty()) return std::nullopt;
  const passwd* pw = ::getpwnam(name.c_str());
  if (pw == nullptr)
    usage("there is no user '" + name + "' to own the gateway's key and certificate",
          "create it (the Debian package creates 'anju', the user anjud runs as), or give --owner "
          "USER ('' leaves the files to root)");
  return Owner{pw->pw_uid, pw->pw_gid};
}

void make_dir(const std::string& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  fs::create_directories(dir, ec);
  if (ec) failed("cannot create the directory " + dir + ": " + ec.message(), "run as root");
  fs::permissions(dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                      fs::perms::others_read | fs::perms::others_exec,
                  ec);
}

// --- The config
// -----------------------------------------------------------------------------------

std::string read_config_text(const std::string& path) {
  int err = 0;
  auto text = read_text(path, &err);
  if (!text)
    failed(
        "cannot read the config " + path + ": " + errno_text(err),
        "give its path with --config (the package installs " + std::string(kDefaultConfig) + ")");
  return *text;
}

Config load_valid_config(const std::string& path, const std::string& text) {
  auto r = parse_config(text, path);
  if (!r.config) {
    std::string what = "the config is not valid:";
    for (const auto& e : r.errors) what += "\n  " + e.to_string();
    failed(what, "correct it (anju provision identity sets the site's codes)");
  }
  return std::move(*r.config);
}

// Writes the edited config over the old one, keeping its mode and owner.
void write_config(const std::string& path, const std::string& text) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    failed("cannot stat the config " + path + ": " + errno_text(errno));
  std::optional<Owner> owner;
  if (st.st_uid != ::geteuid() || st.st_gid != ::getegid()) owner = Owner{st.st_uid, st.st_gid};
  write_atomic(path, text, st.st_mode & 07777, owner);
}

// --- OpenSSL
// --------------------------------------------------------------------------------------

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(X509_REQ* p) const { X509_REQ_free(p); }
  void operator()(X509_NAME* p) const { X509_NAME_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_free(p); }
  void operator()(STACK_OF(X509_EXTENSION) * p) const {
    sk_X509_EXTENSION_pop_free(p, X509_EXTENSION_free);
  }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Cert = std::unique_ptr<X509, Free>;
using Req = std::unique_ptr<X509_REQ, Free>;
using Name = std::unique_ptr<X509_NAME, Free>;
using Bio = std::unique_ptr<BIO, Free>;

// OpenSSL's last reason ("bad decrypt"), emptying its queue.
std::string ssl_error(const std::string& fallback) {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    out = r ? r : std::to_string(e);
  }
  return out.empty() ? fallback : out;
}

Bio mem_bio(const std::string& data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bio_text(BIO* b) {
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  return n > 0 ? std::string(p, static_cast<std::size_t>(n)) : std::string();
}

std::string one_line(const X509_NAME* name) {
  if (name == nullptr) return "?";
  Bio b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  return bio_text(b.get());
}

std::string common_name(const X509_NAME* name) {
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  const ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// "2026-01-31 12:00:00 UTC" (no time_t: fine past 2038 on 32-bit targets).
std::string utc(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string now_utc() {
  std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> t(X509_gmtime_adj(nullptr, 0),
                                                          ASN1_TIME_free);
  return utc(t.get());
}

// Seconds from now to `t` (negative: in the past).
std::int64_t seconds_until(const ASN1_TIME* t) {
  int days = 0, secs = 0;
  if (ASN1_TIME_diff(&days, &secs, nullptr, t) != 1) return 0;
  return static_cast<std::int64_t>(days) * 86400 + secs;
}

// A digest as "AB:CD:...", the way openssl prints fingerprints.
std::string colon_hex(const unsigned char* md, unsigned int len) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    if (i) out += ':';
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 0xf];
  }
  return out;
}

std::string sha256_colon(const unsigned char* der, std::size_t n) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(der, n, md, &len, EVP_sha256(), nullptr);
  return colon_hex(md, len);
}

std::string fingerprint(X509_REQ* req) {
  unsigned char* der = nullptr;
  const int n = i2d_X509_REQ(req, &der);
  if (n <= 0) return "";
  std::string out = sha256_colon(der, static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  return colon_hex(md, len);
}

Key read_key(const std::string& path) {
  int err = 0;
  auto pem = read_text(path, &err);
  if (!pem) failed("cannot read the gateway's key " + path + ": " + errno_text(err), "run as root");
  ERR_clear_error();
  Bio b = mem_bio(*pem);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k)
    failed(path + " holds no private key that can be read (" + ssl_error("not PEM") + ")",
           "if it is not the gateway's key, move it away and run anju provision key to make a new "
           "one (a certificate issued for the old key then stops working)");
  return k;
}

std::string key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    failed("cannot encode the key: " + ssl_error("PEM_write_bio_PrivateKey failed"));
  return bio_text(b.get());
}

// O = Anju gateway, L = <division code>, serialNumber = <grid code>, CN = <site id>.
Name subject_for(const Config& cfg) {
  Name n(X509_NAME_new());
  auto add = [&](const char* field, const std::string& value) {
    if (value.empty()) return;
    if (X509_NAME_add_entry_by_txt(n.get(), field, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                   0) != 1)
      failed(std::string("cannot put ") + field + " in the request: " + ssl_error("?"));
  };
  add("O", kOrganization);
  add("L", cfg.site.division_code);
  add("serialNumber", cfg.site.grid_code);
  add("CN", cfg.site.id);
  return n;
}

std::string make_csr(EVP_PKEY* key, const X509_NAME* subject) {
  Req req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_subject_name(req.get(), subject);
  X509_REQ_set_pubkey(req.get(), key);
  std::unique_ptr<STACK_OF(X509_EXTENSION), Free> exts(sk_X509_EXTENSION_new_null());
  for (const auto& [nid, value] : {std::pair{NID_key_usage, "critical,digitalSignature"},
                                   std::pair{NID_ext_key_usage, "clientAuth"}}) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value);
    if (e == nullptr) failed("cannot make the request's extensions: " + ssl_error("?"));
    sk_X509_EXTENSION_push(exts.get(), e);
  }
  X509_REQ_add_extensions(req.get(), exts.get());
  if (X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0)
    failed("cannot sign the certificate request: " + ssl_error("X509_REQ_sign failed"));
  Bio b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(b.get(), req.get());
  return bio_text(b.get());
}

Req parse_csr(const std::string& pem) {
  Bio b = mem_bio(pem);
  Req r(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return r;
}

// Every certificate of a PEM file, in order (the gateway's first, then any chain).
std::vector<Cert> read_certs(const std::string& path) {
  int err = 0;
  auto pem = read_text(path, &err);
  if (!pem)
    failed("cannot read " + path + ": " + errno_text(err),
           "give the path of the certificate the city's CA returned");
  std::vector<Cert> out;
  Bio b = mem_bio(*pem);
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();
  if (out.empty())
    failed(path + " holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)",
           "if the CA sent a binary (DER) file, convert it first: openssl x509 -inform DER -in " +
               path + " -out gateway.pem");
  return out;
}

std::string certs_pem(const std::vector<Cert>& certs) {
  Bio b(BIO_new(BIO_s_mem()));
  for (const auto& c : certs) PEM_write_bio_X509(b.get(), c.get());
  return bio_text(b.get());
}

// --- identity
// -------------------------------------------------------------------------------------

struct DeviceCode {
  std::string id, path, code;
};

// The GB/T 28181 code of every configured device: (device id, code).
std::vector<std::pair<std::string, std::string>> device_codes(const Config& c) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [id, d] : c.zigbee2mqtt.devices)
    if (!d.gb28181.empty()) out.emplace_back(id, d.gb28181);
  for (const auto& [id, d] : c.chirpstack.devices)
    if (!d.device.place.gb28181.empty()) out.emplace_back(id, d.device.place.gb28181);
  for (const auto& [id, d] : c.generic_mqtt.devices)
    if (!d.place.gb28181.empty()) out.emplace_back(id, d.place.gb28181);
  for (const auto& d : c.modbus.devices)
    if (!d.place.gb28181.empty()) out.emplace_back(d.id, d.place.gb28181);
  return out;
}

int run_identity(const ProvisionCli& cli, const std::string& config_path, Report& r) {
  const bool site = cli.identity->count("--site") > 0;
  const bool grid = cli.identity->count("--grid-code") > 0;
  const bool division = cli.identity->count("--division-code") > 0;
  if (!site && !grid && !division && cli.devices.empty())
    usage("nothing to set",
          "give --site ID, --grid-code CODE, --division-code CODE and/or --device ID=GBCODE");
  std::vector<std::pair<std::string, std::string>> kv;
  if (site) kv.emplace_back("site.id", cli.site);
  if (division) kv.emplace_back("site.division_code", cli.division_code);
  if (grid) kv.emplace_back("site.grid_code", cli.grid_code);
  for (const auto& [key, value] : kv)
    if (std::string e = check_config_value(key, value); !e.empty())
      usage(e, "give the code the city assigned to this compound");

  const std::string text = read_config_text(config_path);
  // The grid code starts with the division code, as both will be.
  if (grid || division) {
    const std::string g = grid ? cli.grid_code : config_value(text, "site.grid_code");
    const std::string d = division ? cli.division_code : config_value(text, "site.division_code");
    if (!g.empty() && !d.empty())
      if (std::string e = bridge::check_grid_code(g, d); !e.empty())
        usage("site.grid_code: " + e,
              "give the codes the city assigned: a grid code's first 12 digits are the division "
              "code of its community");
  }
  std::vector<DeviceCode> devices;
  for (const auto& d : cli.devices) {
    const auto eq = d.rfind('=');
    if (eq == std::string::npos || eq == 0)
      usage("--device wants ID=GBCODE, got '" + d + "'",
            "e.g. --device 0x00158d0001a2b3c4=11010500001340000002");
    DeviceCode dc{d.substr(0, eq), "", d.substr(eq + 1)};
    if (std::string e = bridge::check_gb28181_code(dc.code); !e.empty())
      usage("device " + dc.id + ": " + e,
            "give the device's 20-digit GB/T 28181 code as the city assigned it");
    const auto where = find_device_entries(text, dc.id);
    if (where.empty())
      usage("no device '" + dc.id + "' in " + config_path,
            "configure it first under zigbee2mqtt.devices, chirpstack.devices, "
            "generic_mqtt.devices or modbus.devices (by the id it has there); cameras and access "
            "readers have no GB/T 28181 code in the config");
    if (where.size() > 1) {
      std::string list;
      for (const auto& w : where) list += (list.empty() ? "" : ", ") + w;
      usage("device '" + dc.id + "' is configured in more than one place (" + list + ")",
            "set its gb28181 in each by hand, or give the devices distinct ids");
    }
    for (const auto& other : devices)
      if (other.code == dc.code && other.id != dc.id)
        usage("GB/T 28181 code " + dc.code + " is given to both " + other.id + " and " + dc.id,
              "each device has its own code");
    dc.path = where.front() + ".gb28181";
    kv.emplace_back(dc.path, dc.code);
    devices.push_back(std::move(dc));
  }

  std::string why;
  const std::string edited = set_config_values(text, kv, &why, config_path);
  if (!why.empty())  // the values were checked above: the config itself is the problem
    failed(config_path + " was not changed: " + why,
           "correct the config (or make this change by hand)");
  // A device's code must be its own.
  if (!devices.empty()) {
    const auto parsed = parse_config(edited, config_path);
    if (parsed.config) {
      const auto codes = device_codes(*parsed.config);
      for (const auto& dc : devices)
        for (const auto& [other, code] : codes)
          if (code == dc.code && other != dc.id)
            usage("GB/T 28181 code " + dc.code + " is already the code of device " + other,
                  "each device has its own code: check the one given for " + dc.id);
    }
  }

  ordered_json changes = ordered_json::array();
  for (const auto& [key, value] : kv) {
    const std::string old = config_value(text, key);
    if (old == value) continue;
    r.lines.push_back("  " + key + ": " + (old.empty() ? "(unset)" : "\"" + old + "\"") + " -> \"" +
                      value + "\"");
    changes.push_back({{"key", key}, {"old", old}, {"new", value}});
  }
  const bool changed = edited != text;
  if (changed) {
    write_config(config_path, edited);
    r.lines.insert(r.lines.begin(), "updated " + config_path + ":");
    if (site && config_value(text, "site.id") != cli.site)
      r.notes.push_back(
          "the site id changed: the gateway's certificate request names it; make a new one with "
          "anju provision key");
    r.notes.push_back("restart anjud to use it: systemctl restart anjud");
  } else {
    r.lines.push_back("already set: " + config_path + " has these values (nothing changed)");
  }
  r.j["config"] = config_path;
  r.j["changed"] = changed;
  r.j["changes"] = changes;
  return 0;
}

// --- key
// ------------------------------------------------------------------------------------------

int run_key(const ProvisionCli& cli, const std::string& config_path, Report& r) {
  const std::string text = read_config_text(config_path);
  const Config cfg = load_valid_config(config_path, text);
  const auto owner = file_owner(cli.owner);
  make_dir(cli.out_dir);
  const std::string key_path = (fs::path(cli.out_dir) / kKeyName).string();
  const std::string csr_path = (fs::path(cli.out_dir) / kCsrName).string();

  Key key;
  bool key_created = false;
  struct stat st {};
  if (::lstat(key_path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode))
      failed(key_path + " exists and is not a regular file", "move it away");
    key = read_key(key_path);
    r.lines.push_back("key " + key_path + ": kept (it exists; a key is never replaced)");
    if ((st.st_mode & 077) != 0) {
      if (::chmod(key_path.c_str(), 0600) != 0)
        failed("cannot chmod 600 " + key_path + ": " + errno_text(errno), "run as root");
      r.notes.push_back("the key was open to group or others: its mode is now 0600");
    }
  } else if (errno != ENOENT) {
    failed("cannot look at " + key_path + ": " + errno_text(errno), "run as root");
  } else {
    ERR_clear_error();
    key.reset(EVP_EC_gen("P-256"));
    if (!key) failed("cannot generate an EC P-256 key: " + ssl_error("EVP_EC_gen failed"));
    write_atomic(key_path, key_pem(key.get()), 0600, owner, /*exclusive=*/true);
    key_created = true;
    r.lines.push_back("key " + key_path + ": new EC P-256 key (mode 0600)");
  }

  const Name subject = subject_for(cfg);
  std::string csr_pem;
  bool csr_created = false;
  int err = 0;
  if (auto old = read_text(csr_path, &err)) {
    Req req = parse_csr(*old);
    EVP_PKEY* pub = req ? X509_REQ_get0_pubkey(req.get()) : nullptr;
    if (req && pub && EVP_PKEY_eq(pub, key.get()) == 1 &&
        X509_NAME_cmp(X509_REQ_get_subject_name(req.get()), subject.get()) == 0 &&
        X509_REQ_verify(req.get(), pub) == 1)
      csr_pem = *old;
    ERR_clear_error();
  }
  if (csr_pem.empty()) {
    csr_pem = make_csr(key.get(), subject.get());
    write_atomic(csr_path, csr_pem, 0644, owner);
    csr_created = true;
  }
  Req req = parse_csr(csr_pem);
  if (!req) failed("cannot read back the request " + csr_path);
  const std::string fp = fingerprint(req.get());
  const std::string subj = one_line(subject.get());
  r.lines.push_back("certificate request " + csr_path + ": " +
                    (csr_created ? "written" : "kept (it matches the key and the site)"));
  r.lines.push_back("  subject: " + subj);
  r.lines.push_back("  SHA-256: " + fp);
  r.notes.push_back("send " + csr_path +
                    " to the city's CA (give them the SHA-256 above to compare), then install the "
                    "certificate it returns: anju provision cert FILE");
  r.j["key"] = key_path;
  r.j["key_created"] = key_created;
  r.j["csr"] = csr_path;
  r.j["csr_created"] = csr_created;
  r.j["subject"] = subj;
  r.j["csr_sha256"] = fp;
  return 0;
}

// --- cert
// -----------------------------------------------------------------------------------------

int run_cert(const ProvisionCli& cli, const std::string& config_path, Report& r) {
  if (cli.cert_file.empty())
    usage("which certificate?", "give its file: anju provision cert FILE [--ca CA_FILE]");
  const std::string text = read_config_text(config_path);
  const Config cfg = load_valid_config(config_path, text);
  const auto owner = file_owner(cli.owner);
  const std::string key_path = (fs::path(cli.out_dir) / kKeyName).string();
  const std::string csr_path = (fs::path(cli.out_dir) / kCsrName).string();
  const std::string dest = (fs::path(cli.out_dir) / kCertName).string();
  const std::string& file = cli.cert_file;

  struct stat st {};
  if (::stat(key_path.c_str(), &st) != 0)
    failed("no private key at " + key_path + " (" + errno_text(errno) + ")",
           "run anju provision key first (with the same --out-dir): the certificate must be issued "
           "for its request");
  const Key key = read_key(key_path);
  const std::vector<Cert> certs = read_certs(file);
  X509* leaf = certs.front().get();
  const std::string subj = one_line(X509_get_subject_name(leaf));
  const std::string issuer = one_line(X509_get_issuer_name(leaf));

  // Ours?
  if ((X509_get_extension_flags(leaf) & EXFLAG_CA) != 0)
    failed(file + " is a CA certificate (" + subj + "), not the gateway's",
           "install the certificate the CA issued for " + csr_path +
               " (give the CA's own with "
               "--ca)");
  EVP_PKEY* pub = X509_get0_pubkey(leaf);
  if (pub == nullptr || EVP_PKEY_eq(pub, key.get()) != 1)
    failed("the certificate in " + file + " (" + subj + ") does not belong to the gateway's key " +
               key_path + ": it was issued for another request",
           "send " + csr_path +
               " to the city's CA (anju provision key prints its SHA-256) and "
               "install the certificate issued for it");

  // Valid now?
  const ASN1_TIME* nb = X509_get0_notBefore(leaf);
  const ASN1_TIME* na = X509_get0_notAfter(leaf);
  const std::string from = utc(nb), until = utc(na);
  if (seconds_until(nb) > 0)
    failed("the certificate is not valid yet: valid from " + from + " to " + until +
               ", and this gateway's clock says " + now_utc(),
           "if the clock is wrong, set it (anju check shows the clock); else install it after " +
               from);
  if (seconds_until(na) <= 0)
    failed("the certificate expired on " + until + " (valid from " + from + " to " + until +
               "; now " + now_utc() + ")",
           "ask the city's CA for a new certificate for " + csr_path);

  // For TLS clients?
  const std::uint32_t flags = X509_get_extension_flags(leaf);
  if ((flags & EXFLAG_XKUSAGE) != 0 &&
      (X509_get_extended_key_usage(leaf) & (XKU_SSL_CLIENT | XKU_ANYEKU)) == 0)
    failed(
        "the certificate's extended key usage does not allow TLS client authentication "
        "(no clientAuth)",
        "ask the city's CA for a client certificate (extendedKeyUsage clientAuth), as " + csr_path +
            " requests");
  if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE) == 0)
    failed(
        "the certificate's key usage does not allow digital signatures, which a TLS client "
        "key makes",
        "ask the city's CA for a certificate with keyUsage digitalSignature, as " + csr_path +
            " requests");

  // From the city's CA?
  const std::string ca = !cli.ca_file.empty() ? cli.ca_file : cfg.uplink.broker.tls.ca_file;
  if (ca.empty())
    usage("no CA to check the certificate against",
          "give --ca CA_FILE (the city CA's certificate), or set uplink.tls.ca_file in " +
              config_path);
  const std::string ca_what = cli.ca_file.empty() ? ca + " (uplink.tls.ca_file)" : ca;
  {
    int err = 0;
    if (!read_text(ca, &err))
      failed("cannot read the CA file " + ca_what + ": " + errno_text(err),
             "give the city CA's certificate with --ca CA_FILE");
    std::unique_ptr<X509_STORE, Free> store(X509_STORE_new());
    ERR_clear_error();
    if (X509_STORE_load_file(store.get(), ca.c_str()) != 1)
      failed("the CA file " + ca_what + " holds no PEM certificate (" + ssl_error("?") + ")",
             "give the city CA's certificate (PEM) with --ca CA_FILE");
    std::unique_ptr<STACK_OF(X509), Free> chain(sk_X509_new_null());
    for (std::size_t i = 1; i < certs.size(); ++i) sk_X509_push(chain.get(), certs[i].get());
    std::unique_ptr<X509_STORE_CTX, Free> ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), store.get(), leaf, chain.get());
    // The CA file's certificates are trusted as they are, intermediates included.
    X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_PARTIAL_CHAIN);
    if (X509_verify_cert(ctx.get()) != 1) {
      const int code = X509_STORE_CTX_get_error(ctx.get());
      ERR_clear_error();
      failed("the certificate (issued by " + issuer + ") does not chain to the CA in " + ca_what +
                 ": " + X509_verify_cert_error_string(code),
             "give --ca the certificate of the CA that issued it, or ask the city which CA signs "
             "gateway certificates");
    }
  }

  if (const std::string cn = common_name(X509_get_subject_name(leaf)); cn != cfg.site.id)
    r.notes.push_back("the certificate names CN=" + cn + ", but site.id is " + cfg.site.id +
                      ": the city broker may expect them to be the same");
  if (seconds_until(na) < 30 * 86400)
    r.notes.push_back("the certificate expires within 30 days (" + until +
                      "): ask the city's CA for the next one soon");

  // Install: the certificate, then the config that names it.
  const std::string pem = certs_pem(certs);
  int err = 0;
  const auto old = read_text(dest, &err);
  const bool cert_changed = !old || *old != pem;
  if (cert_changed) write_atomic(dest, pem, 0644, owner);
  std::string why;
  const std::string edited = set_config_values(
      text, {{"uplink.tls.cert_file", dest}, {"uplink.tls.key_file", key_path}}, &why, config_path);
  if (!why.empty())
    failed(
        "the certificate is in " + dest + ", but " + config_path + " could not be updated: " + why,
        "set uplink.tls.cert_file: " + dest + " and uplink.tls.key_file: " + key_path + " by hand");
  const bool config_changed = edited != text;
  if (config_changed) write_config(config_path, edited);

  if (!cert_changed && !config_changed) {
    r.lines.push_back("already installed: " + dest + " is this certificate and " + config_path +
                      " uses it");
  } else {
    r.lines.push_back("installed " + dest + (cert_changed ? "" : " (it was already there)"));
    if (config_changed)
      r.lines.push_back("updated " + config_path + ": uplink.tls.cert_file " + dest +
                        ", uplink.tls.key_file " + key_path);
    r.notes.push_back("restart anjud to use it: systemctl restart anjud");
  }
  r.lines.push_back("  subject: " + subj);
  r.lines.push_back("  issuer:  " + issuer);
  r.lines.push_back("  valid:   " + from + " to " + until);
  r.lines.push_back("  SHA-256: " + fingerprint(leaf));
  if (!cfg.uplink.broker.tls.enabled)
    r.notes.push_back(
        "uplink.tls.enabled is false: the certificate is used once TLS is on "
        "(an ssl:// or mqtts:// uplink.uri and uplink.tls.enabled: true)");
  r.j["cert"] = dest;
  r.j["changed"] = cert_changed || config_changed;
  r.j["cert_changed"] = cert_changed;
  r.j["config_changed"] = config_changed;
  r.j["subject"] = subj;
  r.j["issuer"] = issuer;
  r.j["not_before"] = from;
  r.j["not_after"] = until;
  r.j["sha256"] = fingerprint(leaf);
  return 0;
}

}  // namespace

bool ProvisionCli::selected() const {
  return provision != nullptr && provision->parsed();
}

void add_provision_commands(CLI::App& app, ProvisionCli& cli) {
  cli.provision = app.add_subcommand(
      "provision",
      "set this gateway up for the city: identity codes, key pair and certificate request, the "
      "certificate the city's CA returns (each step can be run again safely)");
  cli.provision->require_subcommand(1);
  cli.provision->fallthrough();

  cli.identity = cli.provision->add_subcommand(
      "identity",
      "set site.id, site.grid_code, site.division_code and devices' GB/T 28181 codes "
      "in the config, in place (comments and layout kept)");
  cli.identity->fallthrough();
  cli.identity->add_option("--site", cli.site, "site id: 1 to 64 of A-Z a-z 0-9 _ -");
  cli.identity->add_option("--grid-code", cli.grid_code,
                           "CJ/T 349 grid code: 20 digits, starting with the division code");
  cli.identity->add_option("--division-code", cli.division_code,
                           "GB/T 2260 division code: 12 digits ('' removes it)");
  cli.identity->add_option("--device", cli.devices,
                           "ID=GBCODE: a configured device's 20-digit GB/T 28181 code (repeat "
                           "for more devices)");

  cli.key = cli.provision->add_subcommand(
      "key",
      "make the gateway's EC P-256 key (kept if it exists) and a certificate request for the "
      "city's CA: subject O=Anju gateway, L=<division code>, serialNumber=<grid code>, "
      "CN=<site id>; prints its SHA-256");
  cli.key->fallthrough();
  cli.cert = cli.provision->add_subcommand(
      "cert",
      "install the certificate the city's CA returned (checked: PEM, our key, valid now, issued "
      "by the CA, clientAuth) and point uplink.tls.cert_file/key_file at it");
  cli.cert->fallthrough();
  cli.cert->add_option("file", cli.cert_file, "the certificate (PEM; a chain may follow it)");
  cli.cert->add_option("--ca", cli.ca_file,
                       "the city CA's certificate to check it against (default: "
                       "uplink.tls.ca_file)");
  for (CLI::App* sub : {cli.key, cli.cert}) {
    sub->add_option("--out-dir", cli.out_dir,
                    "directory of gateway.key, gateway.csr and gateway.crt")
        ->capture_default_str();
    sub->add_option("--owner", cli.owner,
                    "when run as root, the user (and its group) that owns the files written: the "
                    "one anjud runs as; '' leaves them to root")
        ->capture_default_str();
  }
}

int run_provision(const ProvisionCli& cli, const std::string& config_path, bool as_json) {
  const std::string path = config_path.empty() ? std::string(kDefaultConfig) : config_path;
  const bool identity = cli.identity && cli.identity->parsed();
  const bool key = cli.key && cli.key->parsed();
  const std::string name = std::string("anju provision ") + (identity ? "identity"
                                                             : key    ? "key"
                                                                      : "cert");
  Report r;
  int code = 0;
  std::string error, fix;
  try {
    code = identity ? run_identity(cli, path, r)
           : key    ? run_key(cli, path, r)
                    : run_cert(cli, path, r);
  } catch (const Failure& f) {
    code = f.code;
    error = f.what();
    fix = f.fix;
  } catch (const std::exception& e) {
    code = 1;
    error = e.what();
  }
  if (as_json) {
    ordered_json j;
    j["ok"] = code == 0;
    for (auto& [k, v] : r.j.items()) j[k] = v;
    if (code != 0) {
      j["error"] = error;
      j["fix"] = fix;
    }
    j["notes"] = r.notes;
    std::cout << j.dump() << "\n";
    return code;
  }
  if (code != 0) {
    std::cerr << name << ": " << error << "\n";
    if (!fix.empty()) std::cerr << "  fix: " << fix << "\n";
    return code;
  }
  for (const auto& l : r.lines) std::cout << l << "\n";
  for (const auto& n : r.notes) std::cout << "note: " << n << "\n";
  return 0;
}

}  // namespace anju::firmware
