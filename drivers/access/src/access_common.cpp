// Stamping of access-control events (reads the kernel's boot id once: not a pure parser).
#include "anju/drivers/access_common.hpp"

#include "anju/edge/uuid.hpp"

namespace anju::drivers::access {

void stamp(edge::Event& e, const edge::Clock& clock, const SiteInfo& site, const Endpoint& ep) {
  e.ts_ms = clock.wall_ms();
  e.id = edge::uuid_v7(e.ts_ms);
  e.mono_ns = clock.mono_ns();
  e.boot_id = edge::boot_id();
  e.clock_synced = clock.synced();
  e.site = site.site;
  e.grid_code = site.grid_code;
  e.location = ep.location;
  e.device = ep.device;
  if (!ep.door.empty() && !e.attrs.contains("door")) e.attrs["door"] = ep.door;
}

}  // namespace anju::drivers::access
