// A real Modbus TCP server (slave) for tests, built on libmodbus's own server side
// (modbus_new_tcp, modbus_mapping_new, modbus_receive, modbus_reply), on 127.0.0.1 and a port the
// kernel chose. It runs one thread that poll()s the listening socket, its clients and a wake-up
// pipe, so stop() returns at once. It can be told to stop answering (requests are read and
// dropped: the client times out) or be stopped altogether (connections are refused) and started
// again on the same port.
// Thread: the server thread; every public method from the test thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct _modbus;
struct _modbus_mapping_t;

namespace anju::it {

class ModbusServer {
 public:
  // Sizes of the four tables, all starting at address 0; reading past them gets the exception
  // "Illegal Data Address".
  explicit ModbusServer(int coils = 64, int discrete_inputs = 64, int holding_registers = 128,
                        int input_registers = 128);
  ~ModbusServer();
  ModbusServer(const ModbusServer&) = delete;
  ModbusServer& operator=(const ModbusServer&) = delete;

  void start();  // first time: a free loopback port; afterwards the same port again
  void stop();   // closes the listener and every client and joins the thread
  int port() const { return port_; }

  void set_silent(bool silent) { silent_ = silent; }  // read requests, never answer
  void set_holding(int address, std::uint16_t value);
  void set_input(int address, std::uint16_t value);
  void set_coil(int address, bool on);
  void set_discrete(int address, bool on);
  std::int64_t requests() const { return requests_; }  // requests received (answered or not)

 private:
  void loop();

  _modbus* ctx_ = nullptr;
  _modbus_mapping_t* mapping_ = nullptr;
  std::mutex mapping_mu_;
  int port_ = 0;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::vector<int> clients_;  // server thread only
  std::atomic<bool> silent_{false};
  std::atomic<std::int64_t> requests_{0};
  std::thread thread_;
};

// A Modbus RTU server (slave) for one unit id on the master side of a pseudo-terminal pair; the
// driver under test opens the other side (serial_path()) as its serial line. The server keeps its
// own descriptor of that side open so that the master never sees a hang-up between clients.
// Thread: the server thread; every public method from the test thread.
class ModbusRtuServer {
 public:
  explicit ModbusRtuServer(std::uint8_t unit_id, int holding_registers = 32);
  ~ModbusRtuServer();
  ModbusRtuServer(const ModbusRtuServer&) = delete;
  ModbusRtuServer& operator=(const ModbusRtuServer&) = delete;

  const std::string& serial_path() const { return slave_path_; }
  void set_holding(int address, std::uint16_t value);
  std::int64_t requests() const { return requests_; }  // frames for our unit, CRC valid

 private:
  void loop();

  _modbus* ctx_ = nullptr;
  _modbus_mapping_t* mapping_ = nullptr;
  std::mutex mapping_mu_;
  int master_fd_ = -1;
  int slave_fd_ = -1;
  std::string slave_path_;
  int wake_[2] = {-1, -1};
  std::atomic<std::int64_t> requests_{0};
  std::thread thread_;
};

}  // namespace anju::it
