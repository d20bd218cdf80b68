// The local broker locked down by `anju broker-config`: a real Mosquitto runs on the generated
// password file, ACL and mosquitto.conf snippet, anjud logs in with the gateway's generated
// credentials, an operator can command an alert and read the answer, a viewer's or a device's
// command never reaches anjud, anonymous clients and wrong passwords are refused, and a repeated
// request id is applied once.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "anju/edge/mqtt.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {

const std::string kSite = "demo-compound";

json parse(const std::string& s) {
  return json::parse(s, nullptr, false);
}

std::string broker_config(const Anjud& gw, const fs::path& out, const std::string& extra, int* rc) {
  const std::string cmd = "'" + std::string(ANJU_PATH) + "' --config '" +
                          gw.config_path().string() + "' --data-dir '" + gw.data_dir().string() +
                          "' broker-config --out-dir '" + out.string() + "' " + extra;
  std::string output;
  *rc = run_shell(cmd, &output);
  return output;
}

unsigned file_mode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string password_of(const fs::path& out, const std::string& user) {
  const json store = parse(read_file(out / "clients.json"));
  for (const auto& c : store["clients"])
    if (c.value("user", "") == user) return c.value("password", "");
  FAIL("no broker client " << user << " in clients.json");
  return "";
}

bool has_request(const std::vector<Message>& ms, const std::string& request_id) {
  return std::any_of(ms.begin(), ms.end(), [&](const Message& m) {
    return parse(m.payload).value("request_id", "") == request_id;
  });
}

}  // namespace

TEST_CASE(
    "anju broker-config writes the broker's files once, with tight modes, and refuses bad "
    "input",
    "[broker]") {
  Mosquitto local;
  local.reserve_port();
  TempDir out_dir("anju-it-broker");
  const fs::path out = out_dir / "mosquitto";
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.local_username_file = (out_dir / "anjud.username").string();
  cfg.local_password_file = (out_dir / "anjud.password").string();
  Anjud gw(cfg);
  REQUIRE(add_dashboard_user(gw, "wang", "operator", "wang-secret-1") == 0);
  REQUIRE(add_dashboard_user(gw, "lobby", "viewer", "lobby-secret-1") == 0);

  int rc = -1;
  auto output = broker_config(gw, out, "--client z2m:zigbee2mqtt", &rc);
  INFO(output);
  REQUIRE(rc == 0);
  CHECK(file_mode(out / "passwd") == 0600);
  CHECK(file_mode(out / "acl") == 0640);
  CHECK(file_mode(out / "clients.json") == 0600);
  CHECK(file_mode(out_dir / "anjud.password") == 0600);
  CHECK(read_file(out_dir / "anjud.username") == "anjud\n");
  const std::string acl = read_file(out / "acl");
  CHECK(acl.find("user wang\ntopic read anju/" + kSite + "/alert/#\ntopic write anju/" + kSite +
                 "/cmd/#\n") != std::string::npos);
  CHECK(acl.find("user lobby\ntopic read anju/" + kSite + "/alert/#\n") != std::string::npos);
  CHECK(acl.find("user z2m\ntopic readwrite zigbee2mqtt/#\n") != std::string::npos);
  const std::string conf = read_file(out / "mosquitto.conf");
  CHECK(conf.find("listener " + std::to_string(local.port()) + " 127.0.0.1\n") !=
        std::string::npos);
  CHECK(conf.find("allow_anonymous false\n") != std::string::npos);
  CHECK(output.find(conf) != std::string::npos);  // printed as well

  // Idempotent: the same run again changes no byte, and keeps --client's clients.
  const std::string passwd = read_file(out / "passwd");
  output = broker_config(gw, out, "", &rc);
  REQUIRE(rc == 0);
  CHECK(output.find("written") == std::string::npos);
  CHECK(read_file(out / "passwd") == passwd);
  CHECK(read_file(out / "acl") == acl);

  // Mistakes: refused with the reason, nothing written.
  output = broker_config(gw, out, "--client lobby:operator", &rc);
  CHECK(rc == 2);
  CHECK(output.find("'lobby'): user listed twice") != std::string::npos);
  output = broker_config(gw, out, "--client acme:bridge:anju/", &rc);
  CHECK(rc == 2);
  CHECK(output.find("reaches into anju/#") != std::string::npos);
  output = broker_config(gw, out, "--client nobody", &rc);
  CHECK(rc == 2);
  CHECK(output.find("expected USER:ROLE") != std::string::npos);
  output = broker_config(gw, out, "--remove wang", &rc);
  CHECK(rc == 2);
  CHECK(output.find("anju user del wang") != std::string::npos);
  CHECK(read_file(out / "passwd") == passwd);
  CHECK(read_file(out / "acl") == acl);

  // A removed dashboard user and a removed device client disappear from both files.
  std::string del_out;
  REQUIRE(run_shell("'" + std::string(ANJU_PATH) + "' --data-dir '" + gw.data_dir().string() +
                        "' user del lobby",
                    &del_out) == 0);
  output = broker_config(gw, out, "--remove z2m", &rc);
  REQUIRE(rc == 0);
  CHECK(read_file(out / "acl").find("user lobby") == std::string::npos);
  CHECK(read_file(out / "acl").find("user z2m") == std::string::npos);
  CHECK(read_file(out / "passwd").find("lobby:") == std::string::npos);
  CHECK(read_file(out / "passwd").find("wang:") != std::string::npos);
}

TEST_CASE("on the generated ACL an operator commands alerts and nobody else can", "[broker][e2e]") {
  Mosquitto local;
  local.reserve_port();
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
  REQUIRE(add_dashboard_user(gw, "wang", "operator", "wang-secret-1") == 0);
  REQUIRE(add_dashboard_user(gw, "lobby", "viewer", "lobby-secret-1") == 0);
  int rc = -1;
  const auto output = broker_config(gw, out, "--client z2m:zigbee2mqtt", &rc);
  INFO(output);
  REQUIRE(rc == 0);
  local.set_config(read_file(out / "mosquitto.conf"));
  local.start();
  INFO(tail(local.log()));

  // No user, or a wrong password: the broker refuses the connection.
  CHECK_THROWS(Collector(local.uri(), "anju/" + kSite + "/alert/+"));
  CHECK_THROWS(Collector(local.uri(), "anju/" + kSite + "/alert/+", "wang", "not-the-password"));

  // zigbee2mqtt with its own credentials; anjud with the gateway's (it must see the devices).
  Collector z2m(local.uri(), "zigbee2mqtt/bridge/#", "z2m", password_of(out, "z2m"));
  z2m.publish("zigbee2mqtt/bridge/devices", demo_devices_json(), 1, true);
  gw.start();
  REQUIRE(gw.wait_devices(5, 20s));
  // The generated config raises the broker's Receive Maximum from Mosquitto's 20 to anjud's
  // window, and the package's mosquitto-anju.conf says the same.
  const auto st = gw.status();
  REQUIRE(st);
  CHECK((*st)["local_bus"]["window"] == anju::edge::LocalBus::kWindow);
  const std::string inflight =
      "\nmax_inflight_messages " + std::to_string(anju::edge::LocalBus::kWindow) + "\n";
  CHECK(read_file(out / "mosquitto.conf").find(inflight) != std::string::npos);
  CHECK(read_file(fs::path(ANJU_SOURCE_DIR) / "firmware/packaging/mosquitto-anju.conf")
            .find(inflight) != std::string::npos);

  const std::string op_pw = password_of(out, "wang");
  Collector op_alerts(local.uri(), "anju/" + kSite + "/alert/+", "wang", op_pw);
  const std::string reply_topic = "anju/" + kSite + "/reply/wang/console";
  Collector op(local.uri(), reply_topic, "wang", op_pw);
  const std::string viewer_pw = password_of(out, "lobby");
  Collector viewer(local.uri(), "anju/" + kSite + "/alert/+", "lobby", viewer_pw);
  // The viewer listens to all of anju/<site>/#: mosquitto grants the subscription but delivers
  // only what the ACL lets it read (alerts, not the operator's replies).
  Collector viewer_all(local.uri(), "anju/" + kSite + "/#", "lobby", viewer_pw);

  z2m.publish("zigbee2mqtt/smoke_3_2_hall", R"({"smoke":true})", 1, false);
  std::string alert_id;
  REQUIRE(op_alerts.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms) {
          auto j = parse(m.payload);
          if (j.is_object() && j.value("rule", "") == "smoke") alert_id = j.value("alert_id", "");
        }
        return !alert_id.empty();
      },
      15s));
  // The viewer sees the alert too.
  REQUIRE(viewer.wait_for(
      [&](const auto& ms) {
        return std::any_of(ms.begin(), ms.end(), [&](const Message& m) {
          return m.topic.ends_with("/alert/" + alert_id);
        });
      },
      10s));
  const std::string cmd_topic = "anju/" + kSite + "/cmd/alert/" + alert_id;
  auto command = [&](const std::string& action, const std::string& user,
                     const std::string& request_id) {
    return json{
        {"action", action}, {"user", user}, {"request_id", request_id}, {"reply_to", reply_topic}}
        .dump();
  };

  // The viewer and zigbee2mqtt try to ack: the broker drops both (each publish completes: the
  // PUBACK came back before the operator's command is sent).
  viewer.publish(cmd_topic, command("ack", "lobby", "viewer-ack-1"), 1, false);
  z2m.publish(cmd_topic, command("close", "z2m", "z2m-close-1"), 1, false);

  // The operator's ack is the first one anjud sees: it moves the alert from raised. Since anjud
  // gets every message on one connection in the broker's order, its answer also proves the two
  // earlier commands were not delivered (they would have been answered first, on this topic).
  op.publish(cmd_topic, command("ack", "wang", "op-ack-1"), 1, false);
  json first;
  REQUIRE(op.wait_for(
      [&](const auto& ms) {
        for (const auto& m : ms)
          if (auto j = parse(m.payload); j.value("request_id", "") == "op-ack-1") first = j;
        return first.is_object();
      },
      10s));
  CHECK(first.value("ok", false));
  CHECK_FALSE(first.value("duplicate", true));
  CHECK(first["alert"].value("state", "") == "acknowledged");
  CHECK_FALSE(has_request(op.messages(), "viewer-ack-1"));
  CHECK_FALSE(has_request(op.messages(), "z2m-close-1"));

  // The same request again: answered as a duplicate, applied once.
  op.publish(cmd_topic, command("ack", "wang", "op-ack-1"), 1, false);
  REQUIRE(op.wait_for(
      [&](const auto& ms) {
        return std::count_if(ms.begin(), ms.end(), [](const Message& m) {
                 return parse(m.payload).value("request_id", "") == "op-ack-1";
               }) == 2;
      },
      10s));
  json second;
  for (const auto& m : op.messages())
    if (auto j = parse(m.payload); j.value("request_id", "") == "op-ack-1") second = j;
  CHECK(second.value("ok", false));
  CHECK(second.value("duplicate", false));

  // A last command as a barrier: once it is answered, everything before it has been handled.
  op.publish(cmd_topic, command("handle", "wang", "op-handle-1"), 1, false);
  REQUIRE(op.wait_for([](const auto& ms) { return has_request(ms, "op-handle-1"); }, 10s));
  CHECK_FALSE(has_request(op.messages(), "viewer-ack-1"));
  CHECK_FALSE(has_request(op.messages(), "z2m-close-1"));

  // Close it: the retained alert is cleared, which the viewer does see. That comes after the
  // answers to every earlier command, so by then the viewer would have had them if it could.
  op.publish(cmd_topic, command("close", "wang", "op-close-1"), 1, false);
  REQUIRE(op.wait_for([](const auto& ms) { return has_request(ms, "op-close-1"); }, 10s));
  REQUIRE(viewer_all.wait_for(
      [&](const auto& ms) {
        return std::any_of(ms.begin(), ms.end(), [&](const Message& m) {
          return m.topic.ends_with("/alert/" + alert_id) && m.payload.empty();
        });
      },
      10s));
  for (const auto& m : viewer_all.messages()) CHECK(m.topic.find("/reply/") == std::string::npos);
  // The journal: exactly the operator's three transitions, no request but theirs.
  CHECK(sql_i64(gw.db_path(), "SELECT count(*) FROM events WHERE kind='alert_transition'") == 3);
  CHECK(sql_i64(gw.db_path(),
                "SELECT count(*) FROM alert_requests WHERE request_id IN "
                "('viewer-ack-1','z2m-close-1')") == 0);
  CHECK(sql_i64(gw.db_path(), "SELECT count(*) FROM alert_requests WHERE request_id='op-ack-1'") ==
        1);
  // The broker says why it dropped them.
  const std::string log = local.log();
  CHECK(log.find("Denied PUBLISH from") != std::string::npos);
  CHECK(gw.term() == 0);
}
