// sd_notify messages reach the socket systemd names in NOTIFY_SOCKET, and the watchdog interval
// is half of WATCHDOG_USEC.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

#include "anju/firmware/service_notify.hpp"

namespace {
struct FakeSystemd {
  int fd = -1;
  std::string path;
  FakeSystemd() {
    path = (std::filesystem::temp_directory_path() /
            ("anju-notify-" + std::to_string(std::random_device{}())))
               .string();
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    ::setenv("WATCHDOG_USEC", "20000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  }
  ~FakeSystemd() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd);
    ::unlink(path.c_str());
  }
  // The next datagram, waiting at most 5 s.
  std::string next() {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return "<nothing within 5 s>";
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }
};
}  // namespace

TEST_CASE("service notifications under systemd", "[service]") {
  FakeSystemd systemd;
  anju::firmware::ServiceNotifier n;
  CHECK(n.under_systemd());
  CHECK(n.watchdog_interval() == std::chrono::milliseconds(10'000));
  n.ready("site demo: 3 stages running");
  CHECK(systemd.next() == "READY=1\nSTATUS=site demo: 3 stages running");
  n.pet();
  CHECK(systemd.next() == "WATCHDOG=1");
  n.stopping();
  CHECK(systemd.next() == "STOPPING=1");
}

TEST_CASE("service notifications outside systemd do nothing", "[service]") {
  ::unsetenv("NOTIFY_SOCKET");
  ::unsetenv("WATCHDOG_USEC");
  anju::firmware::ServiceNotifier n;
  CHECK_FALSE(n.under_systemd());
  CHECK(n.watchdog_interval() == std::chrono::milliseconds(0));
  n.ready("x");  // no socket: must not fail or block
  n.pet();
}
