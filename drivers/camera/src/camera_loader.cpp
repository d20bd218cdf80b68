// Loads anju-camera.so (camera_service.hpp). No OpenCV here: the module brings it.
#include <dlfcn.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <vector>

#include "anju/drivers/camera/camera_service.hpp"

namespace anju::drivers::camera {
namespace {

using AbiFn = const char* (*)();
using CreateFn = CameraService* (*)(const CameraDriverOptions*, const edge::Clock*,
                                    const CameraService::Sink*) noexcept;

struct Module {
  std::string path;
  CreateFn create = nullptr;
  std::string error;  // set when the module cannot be used
};

std::string dl_error() {
  const char* e = ::dlerror();
  return e ? e : "unknown error";
}

// dlopen and check the module at `path`. It is never unloaded: OpenCV keeps threads and
// thread-local state that must not outlive its code.
Module open_module(const std::string& path) {
  Module m;
  m.path = path;
  const std::string what = "the camera module " + path;
  void* h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    m.error = "cannot load " + what + ": " + dl_error();
    return m;
  }
  auto abi = reinterpret_cast<AbiFn>(::dlsym(h, "anju_camera_module_abi"));
  auto create = reinterpret_cast<CreateFn>(::dlsym(h, "anju_camera_module_create"));
  if (!abi || !create) {
    m.error = what + " is not an Anju camera module (no anju_camera_module_abi/_create)";
    return m;
  }
  const std::string theirs = abi();
  const std::string ours = camera_module_abi();
  if (theirs != ours) {
    m.error = what + " was built for another anjud (module: " + theirs + "; anjud: " + ours +
              "): install the module and anjud from the same package";
    return m;
  }
  m.create = create;
  return m;
}

}  // namespace

std::string default_camera_module_path() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec || exe.empty()) return "/usr/lib/anju/anju-camera.so";
  return (exe.parent_path().parent_path() / "lib" / "anju" / "anju-camera.so").string();
}

CameraLoad load_camera_driver(CameraDriverOptions options, const edge::Clock& clock,
                              CameraService::Sink sink, const std::string& module_path) {
  // One module per path per process; loading the same path again reuses it.
  static std::mutex mu;
  static std::vector<Module> loaded;
  const std::string path = module_path.empty() ? default_camera_module_path() : module_path;
  CameraLoad out;
  out.path = path;
  Module m;
  {
    std::lock_guard lk(mu);
    auto it =
        std::find_if(loaded.begin(), loaded.end(), [&](const Module& x) { return x.path == path; });
    if (it == loaded.end()) it = loaded.insert(loaded.end(), open_module(path));
    m = *it;
  }
  if (!m.create) {
    out.error = m.error;
    return out;
  }
  CameraService* s = m.create(&options, &clock, &sink);
  if (!s) {
    out.error = "the camera module " + path + " could not make the driver (see the log)";
    return out;
  }
  out.service.reset(s);
  return out;
}

}  // namespace anju::drivers::camera
