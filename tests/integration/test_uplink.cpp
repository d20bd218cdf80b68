// The uplink against a real Mosquitto standing in for the city broker.
#include <catch2/catch.hpp>

#include "anju/bridge/outbox.hpp"
#include "anju/bridge/uplink.hpp"
#include "anju/edge/journal.hpp"
#include "harness.hpp"

using namespace anju::it;
using namespace std::chrono_literals;

TEST_CASE("uplink: the window is clamped to the city broker's Receive Maximum; a backlog drains",
          "[uplink]") {
  // Mosquitto takes at most max_inflight_messages unacknowledged QoS 1 publishes from an MQTT 5
  // client (its CONNACK's Receive Maximum). Paho kept what the uplink handed it beyond that in
  // its own queue, out of the uplink's accounting; now the uplink hands it no more than that.
  // MQTT 3.1.1 has no Receive Maximum: the configured window stands.
  const int version = GENERATE(3, 5);
  CAPTURE(version);
  constexpr int kReceiveMaximum = 5;
  constexpr int kWindow = 64;
  constexpr int kBacklog = 300;
  Mosquitto city;
  city.set_config("listener " + std::to_string(city.reserve_port()) +
                  " 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"
                  "max_inflight_messages " +
                  std::to_string(kReceiveMaximum) + "\n");
  city.start();
  Collector got(city.uri(), "anju-it/up/#");

  TempDir dir("anju-it-uplink-window");
  anju::edge::JournalOptions jo;
  jo.path = (dir / "anju.db").string();
  auto journal = anju::edge::Journal::open(jo, nullptr);
  anju::bridge::ensure_outbox_schema(journal->db());
  anju::bridge::OutboxCounters counters;
  {
    anju::bridge::OutboxWriter w(journal->db(), {0, 0, 0, 0}, counters);
    journal->begin();
    for (int i = 0; i < kBacklog; ++i)
      w.put(anju::bridge::MsgClass::event, "m" + std::to_string(i), "anju-it/up/event",
            std::to_string(i));
    journal->commit();
  }

  anju::bridge::UplinkOptions uo;
  uo.endpoint.uri = city.uri();
  uo.endpoint.client_id = "anju-it-window";
  uo.endpoint.mqtt_version = version;
  uo.db_path = jo.path;
  uo.site = "demo-compound";
  uo.window = kWindow;
  anju::bridge::Uplink uplink(uo, counters);
  uplink.start();
  REQUIRE(wait_until([&] { return uplink.stats().connected; }, 20s));
  CHECK(uplink.stats().window == (version == 5 ? kReceiveMaximum : kWindow));
  CHECK(uplink.stats().inflight <= uplink.stats().window);

  REQUIRE(got.wait_for_progress([](const auto& ms) { return ms.size() >= kBacklog; }, 30s, 5s));
  const auto ms = got.messages();
  REQUIRE(ms.size() == kBacklog);
  int out_of_order = 0;
  for (int i = 0; i < kBacklog; ++i) out_of_order += ms[i].payload != std::to_string(i);
  CHECK(out_of_order == 0);
  CHECK(wait_until([&] { return counters.rows[3] == 0; }, 10s));  // every row acknowledged
  uplink.stop(std::chrono::milliseconds(0));
  CHECK(uplink.stats().window == 0);
}
