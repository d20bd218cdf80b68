// The entry points of the module anju-camera.so (camera_service.hpp): the only symbols it
// exports (camera_module.map). Everything else in it, including its copy of the Anju code it
// needs, is local to the module.
#include <exception>

#include <spdlog/spdlog.h>

#include "anju/drivers/camera/camera_driver.hpp"

using anju::drivers::camera::CameraDriver;
using anju::drivers::camera::CameraDriverOptions;
using anju::drivers::camera::CameraService;

extern "C" {

__attribute__((visibility("default"))) const char* anju_camera_module_abi() {
  static const std::string abi = anju::drivers::camera::camera_module_abi();
  return abi.c_str();
}

__attribute__((visibility("default"))) CameraService* anju_camera_module_create(
    const CameraDriverOptions* options, const anju::edge::Clock* clock,
    const CameraService::Sink* sink) noexcept {
  try {
    return new CameraDriver(*options, *clock, *sink);
  } catch (const std::exception& ex) {
    spdlog::error("camera module: cannot make the driver: {}", ex.what());
    return nullptr;
  }
}

}  // extern "C"
