// `anju check` and `anju outbox` against real processes: a real Mosquitto as the local bus, a
// real Mosquitto TLS listener as the city broker (certificates made here with libcrypto), the
// real anjud, and the real `anju` binary, whose output is asserted as a user reads it.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <sys/timex.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <memory>
#include <sstream>

#include "city_contract.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";
const std::vector<std::string> kDevices{"smoke_3_2_hall", "gas_3_2_1201_kitchen", "leak_pump_room",
                                        "door_3_2_entrance", "climate_3_2_1201"};

// --- Certificates -------------------------------------------------------------------------------

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* x) const { X509_free(x); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

Key new_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) throw std::runtime_error("EVP_EC_gen failed");
  return k;
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) throw std::runtime_error("bad extension " + value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key`, signed by `issuer_key` (self-signed when `issuer` is null), valid from
// now + not_before_s to now + not_after_s.
Cert make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
               const std::string& san, long not_before_s, long not_after_s) {
  static long serial = 1000;
  Cert c(X509_new());
  X509_set_version(c.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), not_after_s);
  X509_set_pubkey(c.get(), key);
  X509_NAME* name = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509* signer = issuer ? issuer : c.get();
  X509_set_issuer_name(c.get(), X509_get_subject_name(signer));
  add_ext(c.get(), signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(c.get(), signer, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(c.get(), signer, NID_subject_key_identifier, "hash");
  if (!ca) add_ext(c.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
  if (!san.empty()) add_ext(c.get(), signer, NID_subject_alt_name, san);
  if (X509_sign(c.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0)
    throw std::runtime_error("X509_sign failed");
  return c;
}

void write_cert(const fs::path& p, X509* c) {
  FILE* f = std::fopen(p.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_X509(f, c);
  std::fclose(f);
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                         fs::perms::others_read);
}

void write_key(const fs::path& p, EVP_PKEY* k, fs::perms mode) {
  FILE* f = std::fopen(p.c_str(), "w");
  REQUIRE(f != nullptr);
  PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  fs::permissions(p, mode);
}

// The city's CA and another one, the broker's certificates (good, expired, for another name), and
// the gateway's client certificate, in a directory Mosquitto (which drops root) can read.
struct Pki {
  TempDir dir{"anju-it-pki"};
  fs::path ca, other_ca, server, server_key, expired, wrong_name, client, client_expired,
      client_key;
  Pki() {
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    const long day = 86400;
    auto ca_key = new_key(), other_key = new_key(), srv_key = new_key(), cli_key = new_key();
    auto ca_cert =
        make_cert("Anju test city CA", ca_key.get(), nullptr, nullptr, true, "", -day, 3650 * day);
    auto other_cert =
        make_cert("Some other CA", other_key.get(), nullptr, nullptr, true, "", -day, 3650 * day);
    ca = dir / "ca.pem";
    other_ca = dir / "other-ca.pem";
    server = dir / "server.pem";
    server_key = dir / "server.key";
    expired = dir / "server-expired.pem";
    wrong_name = dir / "server-wrong-name.pem";
    client = dir / "gateway.pem";
    client_expired = dir / "gateway-expired.pem";
    client_key = dir / "gateway.key";
    write_cert(ca, ca_cert.get());
    write_cert(other_ca, other_cert.get());
    write_cert(server, make_cert("127.0.0.1", srv_key.get(), ca_cert.get(), ca_key.get(), false,
                                 "IP:127.0.0.1", -day, 365 * day)
                           .get());
    write_cert(expired, make_cert("127.0.0.1", srv_key.get(), ca_cert.get(), ca_key.get(), false,
                                  "IP:127.0.0.1", -30 * day, -3 * day)
                            .get());
    write_cert(wrong_name, make_cert("city.example.org", srv_key.get(), ca_cert.get(), ca_key.get(),
                                     false, "DNS:city.example.org", -day, 365 * day)
                               .get());
    write_cert(client, make_cert(kSite, cli_key.get(), ca_cert.get(), ca_key.get(), false, "", -day,
                                 365 * day)
                           .get());
    write_cert(client_expired, make_cert(kSite, cli_key.get(), ca_cert.get(), ca_key.get(), false,
                                         "", -30 * day, -3 * day)
                                   .get());
    // Test only: the broker's key must be readable by the mosquitto user.
    write_key(server_key, srv_key.get(),
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                  fs::perms::others_read);
    write_key(client_key, cli_key.get(), fs::perms::owner_read | fs::perms::owner_write);
  }
};

// A Mosquitto TLS listener on loopback serving `cert`. With the CA file in its listener, OpenSSL
// on the broker sends the chain up to the CA; without, the broker's certificate alone (both are
// common in the field, and OpenSSL names them differently).
void start_tls_broker(Mosquitto& m, const Pki& pki, const fs::path& cert, bool send_chain = true) {
  const int port = m.reserve_port();
  m.set_config("listener " + std::to_string(port) + " 127.0.0.1\n" +
               (send_chain ? "cafile " + pki.ca.string() + "\n" : std::string()) + "certfile " +
               cert.string() + "\nkeyfile " + pki.server_key.string() +
               "\nallow_anonymous true\nmax_queued_messages 0\n");
  m.start();
}

std::string tls_uri(Mosquitto& m) {
  return "ssl://127.0.0.1:" + std::to_string(m.reserve_port());
}

// The harness's gateway config with the uplink over TLS, a default heartbeat interval and, per
// device, interval overrides.
void write_config(Anjud& gw, const std::string& ca, const std::string& cert, const std::string& key,
                  const std::map<std::string, int>& heartbeats = {}) {
  std::string y = read_file(gw.config_path());
  auto replace = [&](const std::string& from, const std::string& to) {
    const auto at = y.find(from);
    REQUIRE(at != std::string::npos);
    y.replace(at, from.size(), to);
  };
  if (!ca.empty()) {
    const std::string uri_line = "  uri: " + gw.config().uplink_uri + "\n";
    std::string tls = uri_line + "  tls:\n    enabled: true\n    ca_file: " + ca + "\n";
    if (!cert.empty()) tls += "    cert_file: " + cert + "\n    key_file: " + key + "\n";
    replace(uri_line, tls);
  }
  replace("  heartbeat_timeout_s: 0\n", "  heartbeat_timeout_s: 3600\n");
  for (const auto& [device, seconds] : heartbeats)
    replace("    " + device + ":\n",
            "    " + device + ":\n      heartbeat_timeout_s: " + std::to_string(seconds) + "\n");
  write_file(gw.config_path(), y);
}

struct CheckRun {
  int rc = -1;
  std::string out;
  json results;  // --json only
  json line(const std::string& check) const {
    for (const auto& r : results)
      if (r.value("check", "") == check) return r;
    return json::object();
  }
  // One check's text line with its column padding collapsed, "" when absent:
  // "FAIL  local_broker  cannot reach ..." -> "FAIL local_broker: cannot reach ...".
  std::string shown(const std::string& check) const {
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
      std::istringstream words(l);
      std::string status, name;
      words >> status >> name;
      if (name != check) continue;
      const auto at = l.find_first_not_of(' ', l.find(name) + name.size());
      return status + " " + name + ": " + (at == std::string::npos ? "" : l.substr(at));
    }
    return "";
  }
};

CheckRun run_anju(const Anjud& gw, const std::string& args) {
  CheckRun r;
  r.rc = run_shell("'" + std::string(ANJU_PATH) + "' --config '" + gw.config_path().string() +
                       "' --data-dir '" + gw.data_dir().string() + "' " + args,
                   &r.out);
  if (args.find("--json") != std::string::npos) {
    const auto at = r.out.find_first_of("[{");
    if (at != std::string::npos) r.results = json::parse(r.out.substr(at), nullptr, false);
  }
  return r;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

bool clock_synced() {
  timex tx{};
  const int state = ::adjtimex(&tx);
  return state >= 0 && state != TIME_ERROR && (tx.status & STA_UNSYNC) == 0;
}

// The five demo devices: the list, then one reading each, on the local bus; returns once the
// journal's device registry has them all.
void bring_devices(Anjud& gw, const std::string& local_uri) {
  Publisher pub(local_uri);
  pub.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  INFO(tail(gw.log()));
  REQUIRE(gw.wait_devices(5, 20s));
  pub.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":false,"battery":97})", 1, false);
  pub.publish("zigbee2mqtt/gas_3_2_1201_kitchen", R"({"gas":false})", 1, false);
  pub.publish("zigbee2mqtt/leak_pump_room", R"({"water_leak":false,"battery":88})", 1, false);
  pub.publish("zigbee2mqtt/door_3_2_entrance", R"({"contact":true,"battery":91})", 1, false);
  pub.publish("zigbee2mqtt/climate_3_2_1201", R"({"temperature":22.5,"humidity":40})", 1, false);
  REQUIRE(wait_until([&] { return sql_i64(gw.db_path(), "SELECT count(*) FROM devices") >= 5; },
                     20s, 20ms));
}

}  // namespace

TEST_CASE("anju check passes on a healthy gateway with a TLS uplink, and anju outbox reads it",
          "[check][e2e]") {
  Pki pki;
  Mosquitto local, city;
  local.start();
  start_tls_broker(city, pki, pki.server);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = tls_uri(city);
  Anjud gw(cfg);
  write_config(gw, pki.ca.string(), pki.client.string(), pki.client_key.string());
  gw.start();
  bring_devices(gw, local.uri());
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status();
        return st && (*st)["uplink"].value("connected", false) &&
               (*st)["local_bus"].value("connected", false);
      },
      20s));

  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 0);
  const std::string ca = pki.ca.string();
  CHECK(run.shown("config") ==
        "ok config: " + gw.config_path().string() + " is valid (site " + kSite + ")");
  CHECK(has(run.shown("local_broker"),
            "ok local_broker: " + local.uri() + ": connected (anonymous), subscribed to anju/" +
                kSite + "/cmd/alert/+, a test message on anju/" + kSite + "/check/anju-check-"));
  CHECK(run.shown("city_broker") == "ok city_broker: " + cfg.uplink_uri +
                                        ": TLS verified against " + ca +
                                        " (/CN=127.0.0.1, host name checked)");
  CHECK(has(run.shown("city_certificate"),
            "ok city_certificate: the city broker's certificate (/CN=127.0.0.1) is valid "
            "until "));
  CHECK(has(run.shown("client_certificate"),
            "ok client_certificate: the gateway's "
            "certificate " +
                pki.client.string() + " is valid until "));
  CHECK(run.shown("client_key") ==
        "ok client_key: uplink.tls.key_file " + pki.client_key.string() + " has mode 0600");
  CHECK(has(run.shown("anjud"), "ok anjud: running (pid " + std::to_string(gw.pid()) + ")"));
  CHECK(has(run.shown("uplink"), "ok uplink: anjud is connected to the city broker"));
  CHECK(run.shown("devices") == "ok devices: 5 devices, each heard from within its interval");
  CHECK(run.shown("cameras") == "ok cameras: none configured");
  CHECK(run.shown("readers") == "ok readers: none configured");
  CHECK(run.shown("gpio_doors") == "ok gpio_doors: none configured");
  CHECK(has(run.shown("flash_wear"), "/io write_bytes over its uptime"));
  CHECK(run.shown("clock").rfind(clock_synced() ? "ok clock: " : "warn clock: ", 0) == 0);
  CHECK(has(run.out, clock_synced() ? "0 FAIL, 0 warn, 15 ok\n" : "0 FAIL, 1 warn, 14 ok\n"));

  // The same for scripts: every check ok (the clock as this machine's clock is).
  run = run_anju(gw, "check --json");
  INFO(run.out);
  CHECK(run.rc == 0);
  REQUIRE(run.results.is_array());
  CHECK(run.results.size() == 15);
  for (const auto& r : run.results) {
    INFO(r.dump());
    const std::string expected =
        r["check"] == "clock" && !clock_synced() ? std::string("warn") : std::string("ok");
    CHECK(r["status"] == expected);
    CHECK(r.contains("message"));
    CHECK(r.contains("fix"));
  }

  // A client key others can read: FAIL, and how to fix it.
  fs::permissions(pki.client_key, fs::perms::group_read | fs::perms::others_read,
                  fs::perm_options::add);
  run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(run.shown("client_key") ==
        "FAIL client_key: uplink.tls.key_file " + pki.client_key.string() +
            " has mode 0644: the private key is open to group or others -- fix: chmod 600 " +
            pki.client_key.string() + " (owned by the user anjud runs as)");
  fs::permissions(pki.client_key, fs::perms::owner_read | fs::perms::owner_write);

  // anju outbox: the link and the four classes, from the status socket.
  run = run_anju(gw, "outbox");
  INFO(run.out);
  CHECK(run.rc == 0);
  CHECK(has(run.out, "city link: connected, "));
  CHECK(has(run.out, "class    messages       bytes         oldest   evicted      sent\n"));
  CHECK(has(run.out, " messages ("));
  CHECK(has(run.out, ") waiting for the city\n"));
  run = run_anju(gw, "outbox --json");
  INFO(run.out);
  CHECK(run.rc == 0);
  REQUIRE(run.results.is_object());
  CHECK(run.results["link"]["connected"] == true);
  CHECK(run.results["link"]["anjud_running"] == true);
  REQUIRE(run.results["classes"].size() == 4);
  CHECK(run.results["classes"][0]["class"] == "alert");
  CHECK(run.results["classes"][3]["class"] == "event");
  // anju status prints the outbox line it always did (now from the shared function).
  run = run_anju(gw, "status");
  CHECK(has(run.out, "  outbox         alert "));
  CHECK(has(run.out, " B, evicted 0)  event "));
}

TEST_CASE("anju check fails when the local broker is down, naming it and the fix", "[check][e2e]") {
  Mosquitto local;
  local.start();
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  Anjud gw(cfg);
  write_config(gw, "", "", "");
  gw.start();
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status();
        return st && (*st)["local_bus"].value("connected", false);
      },
      20s));
  local.stop();

  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(run.shown("local_broker") ==
        "FAIL local_broker: cannot reach the local broker " + local.uri() +
            ": Connection refused -- fix: start the compound's Mosquitto (systemctl start "
            "mosquitto; journalctl -u mosquitto says why it stopped), or correct "
            "local_broker.uri in " +
            gw.config_path().string());
  CHECK(run.shown("city_broker") ==
        "ok city_broker: uplink disabled in the config: nothing is sent to the city");
  run = run_anju(gw, "check --json");
  CHECK(run.rc == 1);
  CHECK(run.line("local_broker")["status"] == "fail");
}

TEST_CASE("anju check fails when the local broker refuses the gateway's login", "[check][e2e]") {
  Mosquitto local({false, "anjud", "right-password"});
  local.start();
  TempDir secrets("anju-it-secrets");
  write_file(secrets / "user", "anjud\n");
  write_file(secrets / "password", "wrong-password\n");
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.local_username_file = (secrets / "user").string();
  cfg.local_password_file = (secrets / "password").string();
  Anjud gw(cfg);  // not started: the check needs only its config and data dir
  write_config(gw, "", "", "");

  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  const auto line = run.shown("local_broker");
  CHECK(has(line, "FAIL local_broker: the local broker " + local.uri() +
                      " did not accept the gateway's connection: "));
  CHECK(has(line, "did not accept the gateway's connection: not authorized -- fix: "));
  CHECK(has(line, "fix: check local_broker.username_file (" + cfg.local_username_file + ")"));
  CHECK(has(run.shown("anjud"), "FAIL anjud: anjud is not running (no answer on " +
                                    (gw.data_dir() / "anjud.sock").string() + ")"));

  write_file(secrets / "password", "right-password\n");
  run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(has(run.shown("local_broker"),
            "ok local_broker: " + local.uri() + ": connected with the gateway's login"));
}

TEST_CASE("anju check fails on a city broker whose certificate the CA file does not vouch for",
          "[check][tls]") {
  Pki pki;
  Mosquitto local, city, city_chain;
  local.start();
  start_tls_broker(city, pki, pki.server, false);
  start_tls_broker(city_chain, pki, pki.server, true);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = tls_uri(city);
  Anjud gw(cfg);
  write_config(gw, pki.other_ca.string(), "", "");
  const std::string fix = " -- fix: uplink.tls.ca_file (" + pki.other_ca.string() +
                          ") does not hold the CA that issued the city broker's certificate: put "
                          "the city's CA bundle there";

  // The broker sends its certificate alone.
  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(run.shown("city_broker") ==
        "FAIL city_broker: the city broker's certificate at " + cfg.uplink_uri +
            " is not trusted: unable to get local issuer certificate (issued by /CN=Anju test "
            "city CA; ca_file " +
            pki.other_ca.string() + ")" + fix);
  CHECK(has(run.shown("local_broker"), "ok local_broker: "));

  // The broker sends the chain up to its (self-signed) root, which ca_file does not hold.
  GatewayConfig chain_cfg = cfg;
  chain_cfg.uplink_uri = tls_uri(city_chain);
  Anjud gw_chain(chain_cfg);
  write_config(gw_chain, pki.other_ca.string(), "", "");
  run = run_anju(gw_chain, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(run.shown("city_broker") ==
        "FAIL city_broker: the city broker's certificate at " + tls_uri(city_chain) +
            " is not trusted: self-signed certificate in certificate chain (issued by /CN=Anju "
            "test city CA; ca_file " +
            pki.other_ca.string() + ")" + fix);
}

TEST_CASE("anju check fails on an expired city or gateway certificate", "[check][tls]") {
  Pki pki;
  Mosquitto local, city;
  local.start();
  start_tls_broker(city, pki, pki.expired);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = tls_uri(city);
  Anjud gw(cfg);
  // The gateway's own certificate has expired too.
  write_config(gw, pki.ca.string(), pki.client_expired.string(), pki.client_key.string());

  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(has(run.shown("city_broker"),
            "FAIL city_broker: the city broker's "
            "certificate at " +
                cfg.uplink_uri + " is not trusted: certificate has expired (expired "));
  CHECK(has(run.shown("city_broker"), "fix: the city must renew its broker's certificate"));
  CHECK(has(run.shown("city_certificate"),
            "FAIL city_certificate: the city broker's certificate (/CN=127.0.0.1) expired on "));
  CHECK(has(run.shown("city_certificate"), "(3 days ago)"));
  CHECK(has(run.shown("client_certificate"),
            "FAIL client_certificate: the gateway's "
            "certificate " +
                pki.client_expired.string() + " expired on "));
  run = run_anju(gw, "check --json");
  CHECK(run.line("city_certificate")["status"] == "fail");
  CHECK(has(run.line("city_certificate")["message"].get<std::string>(), "expired"));
}

TEST_CASE("anju check fails on a city certificate for another host name", "[check][tls]") {
  Pki pki;
  Mosquitto local, city;
  local.start();
  start_tls_broker(city, pki, pki.wrong_name);
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  // By name (localhost, still loopback), so that the certificate's names are compared with it.
  cfg.uplink_uri = "ssl://localhost:" + std::to_string(city.port());
  Anjud gw(cfg);
  write_config(gw, pki.ca.string(), "", "");

  auto run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(run.rc == 1);
  const std::string address = "localhost:" + std::to_string(city.port());
  CHECK(has(run.shown("city_broker"),
            "FAIL city_broker: the city broker's certificate at " + cfg.uplink_uri +
                " is not trusted: hostname mismatch (" + address +
                " is not a name in the certificate of /CN=city.example.org)"));
  CHECK(has(run.shown("city_broker"), "fix: put in uplink.uri the host name"));
}

TEST_CASE("anjud refuses a city broker it cannot trust, and its log says why and what to fix",
          "[check][tls][e2e]") {
  Pki pki;
  Mosquitto local, city_other_ca, city_expired, city_wrong_name;
  local.start();
  start_tls_broker(city_other_ca, pki, pki.server, false);
  start_tls_broker(city_expired, pki, pki.expired);
  start_tls_broker(city_wrong_name, pki, pki.wrong_name);
  struct Case {
    std::string uri, ca, expected;
  };
  const std::vector<Case> cases{
      {tls_uri(city_other_ca), pki.other_ca.string(),
       "is not trusted: unable to get local issuer certificate (issued by /CN=Anju test city CA; "
       "ca_file " +
           pki.other_ca.string() + ") -- fix: uplink.tls.ca_file"},
      {tls_uri(city_expired), pki.ca.string(), "is not trusted: certificate has expired (expired "},
      {"ssl://localhost:" + std::to_string(city_wrong_name.port()), pki.ca.string(),
       "is not trusted: hostname mismatch (localhost:" + std::to_string(city_wrong_name.port()) +
           " is not a name in the certificate of /CN=city.example.org)"}};
  for (const auto& c : cases) {
    GatewayConfig cfg;
    cfg.local_uri = local.uri();
    cfg.uplink_uri = c.uri;
    Anjud gw(cfg);
    write_config(gw, c.ca, "", "");
    gw.start();
    const std::string line = "uplink: cannot connect to " + c.uri +
                             ": the city broker's certificate at " + c.uri + " " + c.expected;
    const bool logged = wait_until([&] { return gw.log().find(line) != std::string::npos; }, 20s);
    INFO(tail(gw.log(), 3000));
    CHECK(logged);
    const auto st = gw.status();
    REQUIRE(st);
    CHECK((*st)["uplink"]["connected"] == false);
    CHECK(has((*st)["uplink"].value("last_error", ""), c.expected));
    // Said once, not at every retry of the backoff.
    const std::string log = gw.log();
    CHECK(log.find(line) == log.rfind(line));
    CHECK(gw.term() == 0);
  }
}

TEST_CASE("anju check names a device silent past its interval", "[check][e2e]") {
  Mosquitto local;
  local.start();
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  Anjud gw(cfg);
  // The leak sensor is expected every second; the others within the hour.
  write_config(gw, "", "", "", {{"leak_pump_room", 1}});
  gw.start();
  bring_devices(gw, local.uri());

  // No waiting on a clock: the check is run until it reports the silence (or the deadline).
  CheckRun run;
  const bool named = wait_until(
      [&] {
        run = run_anju(gw, "check --json");
        return run.line("devices").value("status", "") == "fail";
      },
      20s, 100ms);
  INFO(run.out);
  REQUIRE(named);
  CHECK(run.rc == 1);
  const std::string msg = run.line("devices")["message"];
  CHECK(has(msg, "1 of 5 devices silent: leak_pump_room (0x00158d0000000003): "));
  CHECK(has(msg, " ago, expected every 1 s"));
  for (const auto& other : kDevices)
    if (other != "leak_pump_room") CHECK_FALSE(has(msg, other));
  CHECK(has(run.line("devices")["fix"].get<std::string>(), "heartbeat_timeout_s"));
  run = run_anju(gw, "check");
  CHECK(has(run.shown("devices"), "FAIL devices: 1 of 5 devices silent: leak_pump_room"));
}

TEST_CASE("anju outbox shows what waits for the city while the link is down", "[check][outbox]") {
  Mosquitto local, city;
  local.start();
  city.reserve_port();  // never started: the city is unreachable
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  gw.start();
  Publisher pub(local.uri());
  pub.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(gw.wait_devices(5, 20s));
  pub.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status();
        return st && (*st)["outbox"]["alert"].value("rows", 0) >= 1;
      },
      20s));

  auto run = run_anju(gw, "outbox --json");
  INFO(run.out);
  CHECK(run.rc == 0);
  REQUIRE(run.results.is_object());
  CHECK(run.results["link"]["connected"] == false);
  const auto alert = run.results["classes"][0];
  CHECK(alert["class"] == "alert");
  CHECK(alert["messages"].get<int>() >= 1);
  CHECK(alert["bytes"].get<int>() > 0);
  CHECK(alert["oldest_age_s"].is_number());
  CHECK(alert["evicted"] == 0);

  run = run_anju(gw, "outbox");
  CHECK(has(run.out, "city link: DISCONNECTED"));
  CHECK(has(run.out, "\nalert           1 "));

  // With anjud stopped, the journal's figures, and exit 1.
  REQUIRE(gw.term() == 0);
  run = run_anju(gw, "outbox");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "city link: unknown: anjud is not running (figures read from the journal)"));
  CHECK(has(run.out, "\nalert           1 "));
}

TEST_CASE(
    "anju check proves the gateway's access on the local broker: ok on anju broker-config's ACL, "
    "FAIL on one that keeps it out of its tree",
    "[check][broker]") {
  Mosquitto local, narrow;
  local.reserve_port();
  narrow.reserve_port();
  TempDir out_dir("anju-it-broker");
  // mosquitto drops root for its own user, which must reach the files.
  fs::permissions(out_dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                      fs::perms::group_exec | fs::perms::others_read |
                                      fs::perms::others_exec);
  const fs::path out = out_dir / "mosquitto";
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.local_username_file = (out_dir / "anjud.username").string();
  cfg.local_password_file = (out_dir / "anjud.password").string();
  Anjud gw(cfg);
  write_config(gw, "", "", "");
  auto run = run_anju(gw, "broker-config --out-dir '" + out.string() + "'");
  INFO(run.out);
  REQUIRE(run.rc == 0);
  local.set_config(read_file(out / "mosquitto.conf"));
  local.start();

  run = run_anju(gw, "check");
  INFO(run.out);
  CHECK(has(run.shown("local_broker"),
            "ok local_broker: " + local.uri() +
                ": connected with the gateway's login, subscribed to anju/" + kSite +
                "/cmd/alert/+, a test message on anju/" + kSite + "/check/anju-check-"));
  CHECK(has(run.shown("local_broker"), " came back"));

  // The same login on a broker whose ACL lets the gateway read zigbee2mqtt/# only: Mosquitto
  // still grants the subscription, but the gateway's own message never comes back.
  write_file(out_dir / "narrow.acl", "user anjud\ntopic read zigbee2mqtt/#\n");
  fs::permissions(out_dir / "narrow.acl", fs::perms::owner_read | fs::perms::owner_write |
                                              fs::perms::group_read | fs::perms::others_read);
  narrow.set_config("listener " + std::to_string(narrow.port()) +
                    " 127.0.0.1\nallow_anonymous false\npassword_file " +
                    (out / "passwd").string() + "\nacl_file " + (out_dir / "narrow.acl").string() +
                    "\n");
  narrow.start();
  GatewayConfig narrow_cfg = cfg;
  narrow_cfg.local_uri = narrow.uri();
  Anjud gw_narrow(narrow_cfg);
  write_config(gw_narrow, "", "", "");
  run = run_anju(gw_narrow, "check --timeout 1");
  INFO(run.out);
  CHECK(run.rc == 1);
  const std::string line = run.shown("local_broker");
  CHECK(has(line, "FAIL local_broker: connected to " + narrow.uri() + " and subscribed to anju/" +
                      kSite + "/cmd/alert/+, but a test message the gateway published on anju/" +
                      kSite + "/check/anju-check-"));
  CHECK(has(line, " did not come back: "));
  CHECK(has(line,
            "-- fix: the broker's ACL must let the gateway read anju/<site>/cmd/# and read "
            "and write anju/<site>/#: run anju broker-config --config " +
                gw_narrow.config_path().string()));
}

TEST_CASE("anju test-event: a marked test alarm reaches the city broker hop by hop, then is closed",
          "[check][test-event]") {
  Mosquitto local, city;
  local.start();
  city.start();
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  Anjud gw(cfg);
  gw.start();
  Collector at_city(city.uri(), "anju/v1/" + kSite + "/alert/#");
  Publisher pub(local.uri());
  pub.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(gw.wait_devices(5, 20s));
  // The detector has reported (no smoke): the test stands for the alarm it is there for.
  pub.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":false,"battery":90})", 1, false);
  REQUIRE(wait_until(
      [&] {
        auto st = gw.status().value_or(json::object());
        return st["pipeline"].value("committed", 0) >= 1;
      },
      20s));

  auto run = run_anju(gw, "test-event smoke_3_2_hall");
  INFO(run.out);
  CHECK(run.rc == 0);
  CHECK(has(run.out, "(smoke), flagged test: nobody is dispatched\n"));
  CHECK(has(run.out, "  journaled               seq "));
  CHECK(has(run.out, "  alert raised locally    anju/" + kSite + "/alert/"));
  CHECK(has(run.out, " -> anju/v1/" + kSite + "/alert/smoke"));
  CHECK(has(run.out, "  city broker PUBACK      acknowledged"));
  CHECK(has(run.out, "  test alert closed       test complete: acknowledged by the city broker"));
  CHECK(has(run.out, "OK: the test alert reached the city broker in "));

  // At the city: raised and closed, flagged test, on the smoke topic, valid by the contract.
  REQUIRE(at_city.wait_for(
      [](const std::vector<Message>& ms) {
        int seen = 0;
        for (const auto& m : ms) {
          auto j = json::parse(m.payload, nullptr, false);
          if (j.is_object() && j["alert"].value("test", false)) ++seen;
        }
        return seen >= 2;
      },
      20s));
  const auto ms = at_city.messages();
  anju::contract::check_city_contract(ms);
  std::vector<std::string> changes;
  for (const auto& m : ms) {
    auto j = json::parse(m.payload, nullptr, false);
    CHECK(m.topic == "anju/v1/" + kSite + "/alert/smoke");
    CHECK(j["alert"].value("test", false));
    CHECK(j["alert"]["severity"] == 1);
    CHECK(j["alert"]["device"]["id"] == "0x00158d0000000001");
    changes.push_back(j.value("change", ""));
  }
  CHECK(changes == std::vector<std::string>{"raised", "closed"});
  CHECK(json::parse(ms.back().payload)["alert"]["close_reason"] == "test");

  // Nothing stays open, and the device's own state is untouched (no smoke alert).
  auto alerts = run_anju(gw, "alerts");
  CHECK(alerts.rc == 0);
  CHECK(alerts.out == "0 alerts\n");

  // --json for scripts; an event kind as the target (reported for the gateway itself).
  run = run_anju(gw, "test-event water_leak --json");
  INFO(run.out);
  CHECK(run.rc == 0);
  REQUIRE(run.results.is_object());
  CHECK(run.results["ok"] == true);
  std::vector<std::string> hops;
  for (const auto& h : run.results["hops"]) hops.push_back(h.value("hop", ""));
  CHECK(hops ==
        std::vector<std::string>{"submitted", "journaled", "alert", "outbox", "city", "closed"});
  CHECK(run.results["hops"][4]["ms"].get<double>() > 0);

  // What cannot be tested is said plainly.
  run = run_anju(gw, "test-event no_such_thing");
  CHECK(run.rc == 1);
  CHECK(has(run.out, "FAIL: no device or event kind named 'no_such_thing' (anju devices lists"));
  run = run_anju(gw, "test-event temperature");
  CHECK(run.rc == 1);
  CHECK(has(run.out, "FAIL: 'temperature' is an event kind that raises no alarm; one of: smoke,"));
}

TEST_CASE(
    "anju test-event says when the city is unreachable, and outbox --drain-now skips the "
    "backoff once it is back",
    "[check][test-event][outbox]") {
  Mosquitto local, city;
  local.start();
  city.reserve_port();  // not started yet
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.uplink_uri = city.uri();
  // After a failed connect the uplink waits 30 to 60 s: longer than this test waits for the
  // drain below, so only --drain-now can make it in time.
  cfg.backoff_min_ms = 60'000;
  cfg.backoff_max_ms = 60'000;
  Anjud gw(cfg);
  gw.start();
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(wait_until([&] { return gw.status().has_value(); }, 20s));

  auto run = run_anju(gw, "test-event smoke --timeout 2");
  INFO(run.out);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "  waiting                 the city link is down: "));
  CHECK(has(run.out,
            "  test alert closed       test ended: no acknowledgement from the city broker"));
  CHECK(has(run.out,
            "FAIL: no acknowledgement from the city broker within 2 s; the alert stays in the "
            "outbox and is sent when the link is up\n"));
  // The test's raise and its close wait for the city.
  auto status = [&] { return gw.status().value_or(json::object()); };
  REQUIRE(wait_until([&] { return status()["outbox"]["alert"].value("rows", 0) == 2; }, 10s));
  CHECK(status()["uplink"].value("next_retry_ms", 0) > 5000);

  city.start();
  Collector at_city(city.uri(), "anju/v1/" + kSite + "/alert/#");
  run = run_anju(gw, "outbox --drain-now --timeout 20");
  INFO(run.out);
  CHECK(run.rc == 0);
  // The test's two alert messages, and any status or summary that waited with them.
  CHECK(has(run.out, " message(s) that were waiting went to the city in "));
  CHECK(run.out.rfind("drained: ") != std::string::npos);
  CHECK(at_city.wait_for([](const std::vector<Message>& ms) { return ms.size() >= 2; }, 10s));
  anju::contract::check_city_contract(at_city.messages());

  // With the uplink disabled, drain-now says why it cannot.
  REQUIRE(gw.term() == 0);
  GatewayConfig off = cfg;
  off.uplink_uri.clear();
  Anjud gw2(off);
  gw2.start();
  REQUIRE(wait_until([&] { return gw2.status().has_value(); }, 20s));
  run = run_anju(gw2, "outbox --drain-now");
  CHECK(run.rc == 1);
  CHECK(has(run.out, "anju outbox --drain-now: the uplink is disabled (uplink.enabled: false)"));
}
