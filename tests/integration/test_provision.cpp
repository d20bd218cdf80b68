// `anju provision` with the real binary on a copy of the example config: the identity codes set in
// place (and a second run changes no byte), the gateway's key made once and kept, its certificate
// request read back with OpenSSL, certificates issued for it by a test city CA refused when they
// are wrong (another key, expired, not yet valid, another CA, no clientAuth, a CA certificate) and
// installed when right, after which `anju check` connects with it to a Mosquitto TLS listener
// that requires client certificates.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <string>

#include "harness.hpp"
#include "test_pki.hpp"

using namespace anju::it;

namespace {

const std::string kExample = [] {
  std::string f = __FILE__;
  const std::string tail = "tests/integration/test_provision.cpp";
  return f.substr(0, f.size() - tail.size()) + "firmware/config/anju.example.yaml";
}();

struct Run {
  int rc = -1;
  std::string out;  // stdout and stderr
};

Run run_anju(const fs::path& config, const std::string& args) {
  Run r;
  r.rc = run_shell("'" + std::string(ANJU_PATH) + "' --config '" + config.string() + "' " + args,
                   &r.out);
  return r;
}

json json_of(const Run& r) {
  const auto at = r.out.find('{');
  return at == std::string::npos ? json() : json::parse(r.out.substr(at), nullptr, false);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

json check_line(const json& results, const std::string& check) {
  for (const auto& r : results)
    if (r.value("check", "") == check) return r;
  return json::object();
}

}  // namespace

TEST_CASE("anju provision identity edits the config in place and a second run changes nothing",
          "[provision]") {
  TempDir dir("anju-it-provision");
  const fs::path config = dir / "anju.yaml";
  const std::string original = read_file(kExample);
  REQUIRE(!original.empty());
  write_file(config, original);
  fs::permissions(config, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);

  auto run =
      run_anju(config,
               "provision identity --site north-gate --division-code 110105001003 "
               "--grid-code 11010500100300300401 --device climate_3_2_1201=11010500001340000009");
  INFO(run.out);
  CHECK(run.rc == 0);
  CHECK(run.out ==
        "updated " + config.string() +
            ":\n"
            "  site.id: \"sunrise-garden\" -> \"north-gate\"\n"
            "  site.division_code: \"110105001002\" -> \"110105001003\"\n"
            "  site.grid_code: \"11010500100200300401\" -> \"11010500100300300401\"\n"
            "  zigbee2mqtt.devices.climate_3_2_1201.gb28181: \"11010500001340000005\" -> "
            "\"11010500001340000009\"\n"
            "note: the site id changed: the gateway's certificate request names it; make a new "
            "one with anju provision key\n"
            "note: restart anjud to use it: systemctl restart anjud\n");
  std::string expected = replaced(original, "  id: sunrise-garden\n", "  id: north-gate\n");
  expected = replaced(expected, "  grid_code: \"11010500100200300401\"\n",
                      "  grid_code: \"11010500100300300401\"\n");
  expected = replaced(expected, "  division_code: \"110105001002\"\n",
                      "  division_code: \"110105001003\"\n");
  expected = replaced(expected, "      gb28181: \"11010500001340000005\"\n",
                      "      gb28181: \"11010500001340000009\"\n");
  const std::string after = read_file(config);
  CHECK(after == expected);
  CHECK(mode_of(config) == 0640);  // the file's mode is kept

  // Again: nothing to do, not one byte written.
  run = run_anju(config,
                 "provision identity --site north-gate --division-code 110105001003 "
                 "--grid-code 11010500100300300401 --device climate_3_2_1201=11010500001340000009");
  INFO(run.out);
  CHECK(run.rc == 0);
  CHECK(run.out == "already set: " + config.string() + " has these values (nothing changed)\n");
  CHECK(read_file(config) == after);

  // Wrong values: refused, with the reason and the fix; the file stays as it was.
  run = run_anju(config, "provision identity --grid-code 1101050010030030040");
  CHECK(run.rc == 2);
  CHECK(run.out ==
        "anju provision identity: site.grid_code: grid code: 19 digits, 20 required\n"
        "  fix: give the code the city assigned to this compound\n");
  run = run_anju(config, "provision identity --grid-code 11010500100200300401");
  CHECK(run.rc == 2);
  CHECK(has(run.out,
            "anju provision identity: site.grid_code: grid code: \"11010500100200300401\" starts "
            "with 110105001002, but the site's division code is 110105001003 (the first 12 digits "
            "must be equal)\n"));
  run = run_anju(config, "provision identity --device nope=11010500001340000010");
  CHECK(run.rc == 2);
  CHECK(has(run.out, "anju provision identity: no device 'nope' in " + config.string() + "\n"));
  run = run_anju(config, "provision identity --device climate_3_2_1201=11010500001340000002");
  CHECK(run.rc == 2);
  CHECK(run.out ==
        "anju provision identity: GB/T 28181 code 11010500001340000002 is already the code of "
        "device 0x00158d0001a2b3c4\n"
        "  fix: each device has its own code: check the one given for climate_3_2_1201\n");
  run = run_anju(config, "provision identity");
  CHECK(run.rc == 2);
  CHECK(has(run.out, "anju provision identity: nothing to set\n"));
  CHECK(read_file(config) == after);

  // For scripts.
  run = run_anju(config, "--json provision identity --site north-gate");
  CHECK(run.rc == 0);
  const json j = json_of(run);
  CHECK(j.value("ok", false));
  CHECK(j.value("changed", true) == false);
}

TEST_CASE(
    "anju provision key and cert: one key, its CSR, the city's certificate checked and "
    "installed, and anju check connects with it",
    "[provision]") {
  TempDir dir("anju-it-provision");
  fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                  fs::perms::others_read | fs::perms::others_exec);
  const fs::path config = dir / "anju.yaml", tls = dir / "tls", data = dir / "data";
  fs::create_directories(data);

  // The city: its CA, another CA, and its broker (a Mosquitto TLS listener that wants a client
  // certificate from the city's CA).
  const auto ca_key = pki::new_key(), other_key = pki::new_key(), server_key = pki::new_key();
  const auto ca = pki::make_ca("Anju test city CA", ca_key.get());
  const auto other_ca = pki::make_ca("Some other CA", other_key.get());
  const fs::path ca_file = dir / "city-ca.pem", other_ca_file = dir / "other-ca.pem",
                 server_file = dir / "server.pem", server_key_file = dir / "server.key";
  pki::write_cert(ca_file, ca.get());
  pki::write_cert(other_ca_file, other_ca.get());
  pki::CertSpec server;
  server.cn = "127.0.0.1";
  server.san = "IP:127.0.0.1";
  server.key = server_key.get();
  server.issuer = ca.get();
  server.issuer_key = ca_key.get();
  server.eku = "serverAuth";
  pki::write_cert(server_file, pki::make_cert(server).get());
  pki::write_key(server_key_file, server_key.get(),  // test only: the mosquitto user reads it
                 fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                     fs::perms::others_read);
  Mosquitto city;
  const int port = city.reserve_port();
  city.set_config("listener " + std::to_string(port) + " 127.0.0.1\ncafile " + ca_file.string() +
                  "\ncertfile " + server_file.string() + "\nkeyfile " + server_key_file.string() +
                  "\nrequire_certificate true\nallow_anonymous true\n");
  city.start();

  // The example config, pointed at these brokers (the local one is not running: not checked).
  std::string y = read_file(kExample);
  y = replaced(y, "uri: ssl://iot.example.com:8883",
               "uri: ssl://127.0.0.1:" + std::to_string(port));
  y = replaced(y, "uri: tcp://127.0.0.1:1883",
               "uri: tcp://127.0.0.1:" + std::to_string(pick_free_port()));
  y = replaced(y, "ca_file: /etc/anju/tls/ca.pem", "ca_file: " + ca_file.string());
  write_file(config, y);
  const std::string key_args = "--out-dir '" + tls.string() + "' --owner ''";

  // The key and its request.
  auto run = run_anju(config, "provision key " + key_args);
  INFO(run.out);
  REQUIRE(run.rc == 0);
  const fs::path key_file = tls / "gateway.key", csr_file = tls / "gateway.csr",
                 cert_file = tls / "gateway.crt";
  CHECK(has(run.out, "key " + key_file.string() + ": new EC P-256 key (mode 0600)\n"));
  CHECK(has(run.out, "certificate request " + csr_file.string() + ": written\n"));
  CHECK(has(run.out,
            "  subject: O = Anju gateway, L = 110105001002, serialNumber = "
            "11010500100200300401, CN = sunrise-garden\n"));
  CHECK(mode_of(key_file) == 0600);
  const std::string key_pem = read_file(key_file), csr_pem = read_file(csr_file);
  const auto key = pki::read_private_key(key_pem);
  const auto req = pki::read_request(csr_pem);
  REQUIRE(key);
  REQUIRE(req);
  CHECK(EVP_PKEY_eq(X509_REQ_get0_pubkey(req.get()), key.get()) == 1);
  CHECK(X509_REQ_verify(req.get(), X509_REQ_get0_pubkey(req.get())) == 1);
  char curve[64] = {};
  CHECK(EVP_PKEY_get_group_name(key.get(), curve, sizeof curve, nullptr) == 1);
  CHECK(std::string(curve) == "prime256v1");
  const X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  CHECK(pki::name_field(subject, "CN") == "sunrise-garden");
  CHECK(pki::name_field(subject, "O") == "Anju gateway");
  CHECK(pki::name_field(subject, "serialNumber") == "11010500100200300401");
  CHECK(pki::name_field(subject, "L") == "110105001002");
  const std::string sha = pki::request_sha256(req.get());
  CHECK(has(run.out, "  SHA-256: " + sha + "\n"));

  // Again: the key and the request are kept, byte for byte.
  run = run_anju(config, "--json provision key " + key_args);
  INFO(run.out);
  CHECK(run.rc == 0);
  json j = json_of(run);
  CHECK(j.value("key_created", true) == false);
  CHECK(j.value("csr_created", true) == false);
  CHECK(j.value("csr_sha256", "") == sha);
  CHECK(read_file(key_file) == key_pem);
  CHECK(read_file(csr_file) == csr_pem);

  // What the city's CA might send back, right and wrong.
  const auto stranger = pki::new_key();
  auto write = [&](const std::string& name, const pki::Cert& c) {
    const fs::path p = dir / name;
    pki::write_cert(p, c.get());
    return p;
  };
  pki::CertSpec client;
  client.eku = "clientAuth";
  const fs::path good = write("good.pem", pki::issue(req.get(), ca.get(), ca_key.get(), client));
  pki::CertSpec past = client;
  past.not_before_s = -30L * 86400;
  past.not_after_s = -3L * 86400;
  const auto expired_cert = pki::issue(req.get(), ca.get(), ca_key.get(), past);
  const fs::path expired = write("expired.pem", expired_cert);
  pki::CertSpec future = client;
  future.not_before_s = 2L * 86400;
  const auto early_cert = pki::issue(req.get(), ca.get(), ca_key.get(), future);
  const fs::path early = write("early.pem", early_cert);
  pki::CertSpec other_key_spec = client;
  other_key_spec.cn = "sunrise-garden";
  other_key_spec.key = stranger.get();
  other_key_spec.issuer = ca.get();
  other_key_spec.issuer_key = ca_key.get();
  const fs::path wrong_key = write("wrong-key.pem", pki::make_cert(other_key_spec));
  const fs::path wrong_ca =
      write("wrong-ca.pem", pki::issue(req.get(), other_ca.get(), other_key.get(), client));
  pki::CertSpec server_only = client;
  server_only.eku = "serverAuth";
  const fs::path no_client =
      write("server-only.pem", pki::issue(req.get(), ca.get(), ca_key.get(), server_only));

  const std::string before = read_file(config);
  const std::string ca_arg = " --ca '" + ca_file.string() + "' " + key_args;
  run = run_anju(config, "provision cert '" + wrong_key.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(run.out == "anju provision cert: the certificate in " + wrong_key.string() +
                       " (CN = sunrise-garden) does not belong to the gateway's key " +
                       key_file.string() +
                       ": it was issued for another request\n"
                       "  fix: send " +
                       csr_file.string() +
                       " to the city's CA (anju provision key prints its SHA-256) and install "
                       "the certificate issued for it\n");
  run = run_anju(config, "provision cert '" + expired.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  const std::string nb = pki::utc(X509_get0_notBefore(expired_cert.get())),
                    na = pki::utc(X509_get0_notAfter(expired_cert.get()));
  CHECK(has(run.out, "anju provision cert: the certificate expired on " + na + " (valid from " +
                         nb + " to " + na + "; now "));
  CHECK(has(run.out, "  fix: ask the city's CA for a new certificate for " + csr_file.string()));
  run = run_anju(config, "provision cert '" + early.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "anju provision cert: the certificate is not valid yet: valid from " +
                         pki::utc(X509_get0_notBefore(early_cert.get())) + " to " +
                         pki::utc(X509_get0_notAfter(early_cert.get())) +
                         ", and this gateway's clock says "));
  run = run_anju(config, "provision cert '" + wrong_ca.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(has(run.out,
            "anju provision cert: the certificate (issued by CN = Some other CA) does not "
            "chain to the CA in " +
                ca_file.string() + ": unable to get local issuer certificate\n"));
  // Without --ca: uplink.tls.ca_file, which is the city's CA here too.
  run = run_anju(config, "provision cert '" + wrong_ca.string() + "' " + key_args);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "does not chain to the CA in " + ca_file.string() + " (uplink.tls.ca_file)"));
  run = run_anju(config, "provision cert '" + no_client.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(has(run.out,
            "anju provision cert: the certificate's extended key usage does not allow TLS "
            "client authentication (no clientAuth)\n"));
  run = run_anju(config, "provision cert '" + ca_file.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "anju provision cert: " + ca_file.string() +
                         " is a CA certificate (CN = Anju test city CA), not the gateway's\n"));
  run = run_anju(config, "provision cert '" + key_file.string() + "'" + ca_arg);
  CHECK(run.rc == 1);
  CHECK(has(run.out, "anju provision cert: " + key_file.string() +
                         " holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)\n"));
  CHECK(!fs::exists(cert_file));
  CHECK(read_file(config) == before);

  // The right one: installed, and the config names it.
  run = run_anju(config, "provision cert '" + good.string() + "'" + ca_arg);
  INFO(run.out);
  CHECK(run.rc == 0);
  CHECK(has(run.out, "installed " + cert_file.string() + "\nupdated " + config.string() +
                         ": uplink.tls.cert_file " + cert_file.string() + ", uplink.tls.key_file " +
                         key_file.string() + "\n"));
  CHECK(read_file(cert_file) == read_file(good));
  const std::string installed = read_file(config);
  CHECK(installed == replaced(replaced(before, "cert_file: /etc/anju/tls/gateway.crt",
                                       "cert_file: " + cert_file.string()),
                              "key_file: /etc/anju/tls/gateway.key",
                              "key_file: " + key_file.string()));

  // Again: already installed, nothing written.
  run = run_anju(config, "provision cert '" + good.string() + "'" + ca_arg);
  CHECK(run.rc == 0);
  CHECK(has(run.out, "already installed: " + cert_file.string() + " is this certificate and " +
                         config.string() + " uses it\n"));
  CHECK(read_file(config) == installed);

  // anju check: the city broker accepts the gateway's certificate, which is valid, and its key
  // is private.
  run = run_anju(config, "--data-dir '" + data.string() + "' check --json --timeout 3");
  INFO(run.out);
  const auto at = run.out.find('[');
  REQUIRE(at != std::string::npos);
  const json results = json::parse(run.out.substr(at), nullptr, false);
  REQUIRE(results.is_array());
  const json broker = check_line(results, "city_broker");
  CHECK(broker.value("status", "") == "ok");
  CHECK(broker.value("message", "") == "ssl://127.0.0.1:" + std::to_string(port) +
                                           ": TLS verified against " + ca_file.string() +
                                           " (/CN=127.0.0.1, host name checked)");
  const json cert = check_line(results, "client_certificate");
  CHECK(cert.value("status", "") == "ok");
  CHECK(has(cert.value("message", ""),
            "the gateway's certificate " + cert_file.string() + " is valid until "));
  const json key_line = check_line(results, "client_key");
  CHECK(key_line.value("status", "") == "ok");
  CHECK(key_line.value("message", "") ==
        "uplink.tls.key_file " + key_file.string() + " has mode 0600");
}
