#include "modbus_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <modbus/modbus.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace anju::it {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("modbus server: " + what + ": " + std::strerror(errno));
}

}  // namespace

ModbusServer::ModbusServer(int coils, int discrete_inputs, int holding_registers,
                           int input_registers) {
  mapping_ = modbus_mapping_new(coils, discrete_inputs, holding_registers, input_registers);
  if (mapping_ == nullptr) fail("modbus_mapping_new");
}

ModbusServer::~ModbusServer() {
  stop();
  modbus_mapping_free(mapping_);
}

void ModbusServer::start() {
  if (thread_.joinable()) return;
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) fail("socket");
  const int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));  // 0 the first time: any free port
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listen_fd_, 8) < 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) < 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    fail("bind/listen on 127.0.0.1:" + std::to_string(port_));
  }
  port_ = ntohs(addr.sin_port);
  // libmodbus's TCP context does the framing (MBAP) of requests and replies on the sockets we
  // hand it with modbus_set_socket().
  ctx_ = modbus_new_tcp("127.0.0.1", port_);
  if (ctx_ == nullptr) fail("modbus_new_tcp");
  if (::pipe2(wake_, O_CLOEXEC) < 0) fail("pipe2");
  thread_ = std::thread([this] { loop(); });
}

void ModbusServer::stop() {
  if (!thread_.joinable()) return;
  const char c = 'x';
  if (::write(wake_[1], &c, 1) < 0) {
    // The pipe is ours and empty: cannot fail in practice; the join below would then hang,
    // so make it loud.
    std::abort();
  }
  thread_.join();
  for (int fd : clients_) ::close(fd);
  clients_.clear();
  ::close(listen_fd_);
  listen_fd_ = -1;
  ::close(wake_[0]);
  ::close(wake_[1]);
  wake_[0] = wake_[1] = -1;
  modbus_set_socket(ctx_, -1);
  modbus_free(ctx_);
  ctx_ = nullptr;
}

void ModbusServer::set_holding(int address, std::uint16_t value) {
  std::lock_guard lock(mapping_mu_);
  mapping_->tab_registers[address] = value;
}
void ModbusServer::set_input(int address, std::uint16_t value) {
  std::lock_guard lock(mapping_mu_);
  mapping_->tab_input_registers[address] = value;
}
void ModbusServer::set_coil(int address, bool on) {
  std::lock_guard lock(mapping_mu_);
  mapping_->tab_bits[address] = on ? 1 : 0;
}
void ModbusServer::set_discrete(int address, bool on) {
  std::lock_guard lock(mapping_mu_);
  mapping_->tab_input_bits[address] = on ? 1 : 0;
}

void ModbusServer::loop() {
  std::uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
  while (true) {
    std::vector<pollfd> fds;
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (int fd : clients_) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;  // stop()
    if (fds[1].revents & POLLIN) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) clients_.push_back(fd);
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      const int fd = fds[i].fd;
      modbus_set_socket(ctx_, fd);
      const int rc = modbus_receive(ctx_, query);
      if (rc > 0) {
        ++requests_;
        if (!silent_) {
          std::lock_guard lock(mapping_mu_);
          modbus_reply(ctx_, query, rc, mapping_);
        }
      } else if (rc < 0) {
        ::close(fd);
        std::erase(clients_, fd);
      }
    }
  }
}

// ---- RTU over a pseudo-terminal

ModbusRtuServer::ModbusRtuServer(std::uint8_t unit_id, int holding_registers) {
  mapping_ = modbus_mapping_new(0, 0, holding_registers, 0);
  if (mapping_ == nullptr) fail("modbus_mapping_new");
  master_fd_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master_fd_ < 0 || ::grantpt(master_fd_) < 0 || ::unlockpt(master_fd_) < 0) fail("openpt");
  const char* name = ::ptsname(master_fd_);
  if (name == nullptr) fail("ptsname");
  slave_path_ = name;
  slave_fd_ = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave_fd_ < 0) fail("open " + slave_path_);
  // Raw from the start (the driver sets raw mode again when it opens the line).
  termios t{};
  ::tcgetattr(slave_fd_, &t);
  ::cfmakeraw(&t);
  ::tcsetattr(slave_fd_, TCSANOW, &t);
  // The RTU context only frames: it never opens its device; it reads and writes the master fd.
  ctx_ = modbus_new_rtu("/dev/null", 9600, 'N', 8, 1);
  if (ctx_ == nullptr) fail("modbus_new_rtu");
  modbus_set_slave(ctx_, unit_id);
  modbus_set_socket(ctx_, master_fd_);
  if (::pipe2(wake_, O_CLOEXEC) < 0) fail("pipe2");
  thread_ = std::thread([this] { loop(); });
}

ModbusRtuServer::~ModbusRtuServer() {
  const char c = 'x';
  if (::write(wake_[1], &c, 1) < 0) std::abort();
  thread_.join();
  modbus_set_socket(ctx_, -1);
  modbus_free(ctx_);
  ::close(wake_[0]);
  ::close(wake_[1]);
  ::close(slave_fd_);
  ::close(master_fd_);
  modbus_mapping_free(mapping_);
}

void ModbusRtuServer::set_holding(int address, std::uint16_t value) {
  std::lock_guard lock(mapping_mu_);
  mapping_->tab_registers[address] = value;
}

void ModbusRtuServer::loop() {
  std::uint8_t query[MODBUS_RTU_MAX_ADU_LENGTH];
  while (true) {
    pollfd fds[2] = {{wake_[0], POLLIN, 0}, {master_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[0].revents != 0) return;
    if ((fds[1].revents & POLLIN) == 0) continue;
    // A frame for another unit (or a bad CRC) gives 0 or -1: nothing to answer.
    const int rc = modbus_receive(ctx_, query);
    if (rc > 0) {
      ++requests_;
      std::lock_guard lock(mapping_mu_);
      modbus_reply(ctx_, query, rc, mapping_);
    } else if (rc < 0) {
      modbus_flush(ctx_);
    }
  }
}

}  // namespace anju::it
