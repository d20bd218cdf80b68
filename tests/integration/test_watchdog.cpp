// The systemd watchdog: anjud pets it (WATCHDOG=1 on NOTIFY_SOCKET) only while its pipeline goes
// round; a test build whose pipeline hangs on purpose stops petting, so systemd would restart it.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "anju/bridge/city_bridge.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/edge/journal.hpp"
#include "harness.hpp"

using namespace anju::it;

namespace {

// systemd's side of sd_notify: a datagram socket in a temp dir.
struct NotifySocket {
  TempDir dir{"anju-it-notify"};
  std::string path = (dir.path() / "notify").string();
  int fd = -1;
  NotifySocket() {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~NotifySocket() { ::close(fd); }
  // The next datagram within `timeout`, or nothing.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[1024];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
  // Waits for a datagram containing `part`, skipping others, until `timeout` passes.
  bool wait_for(const std::string& part, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      auto m = next(left);
      if (!m) return false;
      if (m->find(part) != std::string::npos) return true;
    }
  }
};

}  // namespace

TEST_CASE("watchdog: anjud pets systemd while its pipeline runs and stops when it hangs",
          "[watchdog]") {
  Mosquitto local;
  local.start();
  NotifySocket systemd;
  GatewayConfig cfg;
  cfg.local_uri = local.uri();
  cfg.binary = ANJUD_TEST_PATH;
  // WatchdogSec=3s: pets every 1.5 s; stuck after 3 s without the pipeline going round.
  cfg.environment = {"NOTIFY_SOCKET=" + systemd.path, "WATCHDOG_USEC=3000000"};
  Anjud gw(cfg);
  gw.start();
  INFO("anjud log:\n" << tail(gw.log()));
  REQUIRE(systemd.wait_for("READY=1", 20s));
  // Alive: two pets in a row.
  REQUIRE(systemd.wait_for("WATCHDOG=1", 5s));
  REQUIRE(systemd.wait_for("WATCHDOG=1", 5s));

  std::ofstream(gw.data_dir() / "hang") << "now\n";
  // The stuck pipeline is reported, and from then on no pet comes for two whole WatchdogSec
  // (systemd would have restarted anjud after one).
  CHECK(systemd.wait_for("STATUS=pipeline stuck", 15s));
  CHECK_FALSE(systemd.wait_for("WATCHDOG=1", 6s));
  CHECK(tail(gw.log()).find("the pipeline thread has not gone round its loop for") !=
        std::string::npos);
  gw.kill9();  // its pipeline never returns: SIGTERM could not finish
}

TEST_CASE("watchdog: the uplink beats while it waits out a long reconnect backoff", "[watchdog]") {
  // The city is unreachable (a reserved port nobody listens on) and the backoff is a minute: the
  // uplink thread waits, which is not a hang, so its heartbeat must go on.
  Mosquitto city;
  city.reserve_port();
  TempDir dir("anju-it-uplink-beat");
  anju::edge::JournalOptions jo;
  jo.path = (dir / "anju.db").string();
  auto journal = anju::edge::Journal::open(jo, nullptr);
  anju::bridge::ensure_outbox_schema(journal->db());
  anju::bridge::OutboxCounters counters;
  anju::bridge::UplinkOptions uo;
  uo.endpoint.uri = city.uri();
  uo.endpoint.client_id = "anju-it-beat";
  uo.db_path = jo.path;
  uo.site = "demo-compound";
  uo.backoff_min_ms = 60'000;
  uo.backoff_max_ms = 60'000;
  anju::bridge::Uplink uplink(uo, counters);
  uplink.start();
  REQUIRE(wait_until([&] { return uplink.stats().connect_failures >= 1; }, 20s));
  REQUIRE(uplink.stats().next_retry_ms > 20'000);  // in its backoff wait
  const std::int64_t first = uplink.heartbeat_mono_ms();
  CHECK(wait_until([&] { return uplink.heartbeat_mono_ms() >= first + 1500; }, 5s));
  CHECK_FALSE(uplink.stats().connected);
  uplink.stop(std::chrono::milliseconds(0));
}
