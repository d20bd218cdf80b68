#!/usr/bin/python3
"""The dashboard in a real browser: headless Chromium from Debian, driven by Selenium.

Starts a local Mosquitto (the compound's bus) and a city Mosquitto on free loopback ports, the built
anjud with the dashboard on a free port and one operator, then, in the browser: logs in, waits for
the live stream, publishes a zigbee2mqtt smoke alarm, sees the alert appear without a reload (SSE),
acknowledges it and closes it with the buttons (accepting the confirmation), and checks that a
subscriber on the city broker received the raised, acknowledged and closed messages of that alert.
Saves screenshots into --out (printed). Every wait is on a condition with a deadline.

Exit 0: passed. Anything else: failed, with the reason, and the logs of what it started.
A missing chromium, chromedriver or selenium is a failure (run scripts/install-deps), never a skip.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SITE = "demo-compound"
USER, PASSWORD = "browser-op", "browser-pass-1"

# The retained zigbee2mqtt/bridge/devices list of scripts/z2m-sim (coordinator + five devices).
DEVICES = [
    {"ieee_address": "0x00124b0000000000", "type": "Coordinator", "friendly_name": "Coordinator",
     "definition": None},
    {"ieee_address": "0x00158d0000000001", "type": "EndDevice", "friendly_name": "smoke_3_2_hall",
     "definition": {"model": "JTYJ-GD-01LM/BW", "vendor": "Aqara", "exposes": [
         {"type": "binary", "property": "smoke"}, {"type": "numeric", "property": "battery"},
         {"type": "binary", "property": "tamper"}, {"type": "binary", "property": "battery_low"}]}},
    {"ieee_address": "0x00158d0000000002", "type": "EndDevice",
     "friendly_name": "gas_3_2_1201_kitchen",
     "definition": {"model": "JTQJ-BF-01LM/BW", "vendor": "Aqara",
                    "exposes": [{"type": "binary", "property": "gas"}]}},
    {"ieee_address": "0x00158d0000000003", "type": "EndDevice", "friendly_name": "leak_pump_room",
     "definition": {"model": "SJCGQ11LM", "vendor": "Aqara", "exposes": [
         {"type": "binary", "property": "water_leak"}, {"type": "numeric", "property": "battery"}]}},
    {"ieee_address": "0x00158d0000000004", "type": "EndDevice",
     "friendly_name": "door_3_2_entrance",
     "definition": {"model": "MCCGQ11LM", "vendor": "Aqara", "exposes": [
         {"type": "binary", "property": "contact"}, {"type": "numeric", "property": "battery"}]}},
    {"ieee_address": "0x00158d0000000005", "type": "EndDevice",
     "friendly_name": "climate_3_2_1201",
     "definition": {"model": "WSDCGQ11LM", "vendor": "Aqara", "exposes": [
         {"type": "numeric", "property": "temperature"},
         {"type": "numeric", "property": "humidity"},
         {"type": "numeric", "property": "battery"}]}},
]


class Failed(Exception):
    pass


def wait_until(pred, timeout, what, poll=0.05):
    """Polls pred() until it returns something truthy or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise Failed(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def find(program, extra=("/usr/sbin", "/usr/bin", "/sbin")):
    path = shutil.which(program)
    if path:
        return path
    for d in extra:
        if os.access(os.path.join(d, program), os.X_OK):
            return os.path.join(d, program)
    return None


class Procs:
    """Everything this test starts; stopped by PID at the end (SIGTERM, then SIGKILL)."""

    def __init__(self, work):
        self.work = work
        self.procs = []  # (name, Popen, log path)

    def start(self, name, argv, stdin=None):
        log = os.path.join(self.work, name + ".log")
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdin=stdin or subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, close_fds=True)
        out.close()
        self.procs.append((name, p, log))
        return p

    def stop(self, p, grace=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop_all(self):
        for _, p, _ in reversed(self.procs):
            self.stop(p, 5)

    def dump_logs(self):
        for name, _, log in self.procs:
            try:
                with open(log, "rb") as f:
                    text = f.read()[-3000:].decode(errors="replace")
            except OSError:
                continue
            print(f"---- {name} log (tail) ----\n{text}", file=sys.stderr)


def start_broker(procs, name, mosquitto):
    port = free_port()
    conf = os.path.join(procs.work, name + ".conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "max_queued_messages 0\nset_tcp_nodelay true\nlog_dest stderr\n")
    os.chmod(conf, 0o644)  # mosquitto started as root reads it as the mosquitto user
    p = procs.start(name, [mosquitto, "-c", conf])
    wait_until(lambda: p.poll() is not None or port_open(port), 10, f"{name} to listen")
    if p.poll() is not None:
        raise Failed(f"{name} (mosquitto) did not start")
    return port


def gateway_yaml(local_port, city_port, dashboard_port):
    return f"""site:
  id: {SITE}
  name: Anju browser test
  grid_code: "11010500100200300401"
  division_code: "110105001002"
log_level: info
local_broker:
  uri: tcp://127.0.0.1:{local_port}
uplink:
  enabled: true
  uri: tcp://127.0.0.1:{city_port}
  backoff_min_ms: 100
  backoff_max_ms: 1000
rules:
  heartbeat_timeout_s: 0
zigbee2mqtt:
  base_topic: zigbee2mqtt
  devices:
    smoke_3_2_hall:
      building: "3"
      unit: "2"
      room: hall
dashboard:
  enabled: true
  listen: 127.0.0.1:{dashboard_port}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anjud", required=True)
    ap.add_argument("--anju", required=True)
    ap.add_argument("--out", required=True, help="where screenshots go (the build tree)")
    args = ap.parse_args()

    missing = [p for p in ("chromium", "chromedriver", "mosquitto", "mosquitto_pub",
                           "mosquitto_sub") if not find(p)]
    try:
        from selenium import webdriver
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait
    except ImportError:
        missing.append("python3-selenium")
    if missing:
        print(f"FAIL: {', '.join(missing)} missing: run scripts/install-deps "
              "(this test is never skipped)", file=sys.stderr)
        return 1

    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="anju-browser-")
    os.chmod(work, 0o755)
    procs = Procs(work)
    driver = None
    ok = False
    try:
        mosquitto, pub, sub = find("mosquitto"), find("mosquitto_pub"), find("mosquitto_sub")
        local_port = start_broker(procs, "local-mosquitto", mosquitto)
        city_port = start_broker(procs, "city-mosquitto", mosquitto)

        def publish(port, topic, payload, retain=False):
            argv = [pub, "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-s"]
            if retain:
                argv.append("-r")
            subprocess.run(argv, input=payload.encode(), check=True, timeout=20)

        # The city's side: a subscriber, ready once a marker it is sent comes back.
        city_log = os.path.join(work, "city-messages.txt")
        city_out = open(city_log, "ab")
        city_sub = subprocess.Popen([sub, "-h", "127.0.0.1", "-p", str(city_port), "-q", "1",
                                     "-t", f"anju/v1/{SITE}/#", "-F", "%t\t%p"],
                                    stdin=subprocess.DEVNULL, stdout=city_out,
                                    stderr=subprocess.STDOUT)
        city_out.close()
        procs.procs.append(("city-subscriber", city_sub, city_log))

        def city_messages():
            with open(city_log, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return [tuple(line.split("\t", 1)) for line in lines if "\t" in line]

        def marker_seen():
            if any(t.endswith("/zz-marker") for t, _ in city_messages()):
                return True
            publish(city_port, f"anju/v1/{SITE}/zz-marker", "ready")
            return False

        wait_until(marker_seen, 15, "the city subscriber to be subscribed", poll=0.2)

        # zigbee2mqtt's retained device list, then anjud with the dashboard and one operator.
        publish(local_port, "zigbee2mqtt/bridge/devices", json.dumps(DEVICES), retain=True)
        dashboard_port = free_port()
        config = os.path.join(work, "anju.yaml")
        with open(config, "w") as f:
            f.write(gateway_yaml(local_port, city_port, dashboard_port))
        data = os.path.join(work, "data")
        os.makedirs(data)
        r = subprocess.run([args.anju, "--data-dir", data, "user", "add", USER, "--role",
                            "operator"], input=(PASSWORD + "\n").encode(),
                           capture_output=True, timeout=60)
        if r.returncode != 0:
            raise Failed(f"anju user add: {r.stdout.decode()}{r.stderr.decode()}")
        anjud = procs.start("anjud", [args.anjud, "--config", config, "--data-dir", data])

        def devices_known():
            if anjud.poll() is not None:
                raise Failed(f"anjud exited with {anjud.returncode}")
            r = subprocess.run([args.anju, "--data-dir", data, "status", "--json"],
                               capture_output=True, timeout=10)
            try:
                return json.loads(r.stdout).get("zigbee2mqtt", {}).get("devices") == 5
            except ValueError:
                return False

        wait_until(devices_known, 30, "anjud to know the five devices", poll=0.1)
        wait_until(lambda: port_open(dashboard_port), 10, "the dashboard to listen")

        # The browser.
        opts = webdriver.ChromeOptions()
        opts.binary_location = find("chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,900", f"--user-data-dir={work}/chromium-profile",
                  "--no-first-run", "--disable-extensions"):
            opts.add_argument(a)
        service = Service(executable_path=find("chromedriver"),
                          log_path=os.path.join(work, "chromedriver.log"))
        driver = webdriver.Chrome(service=service, options=opts)
        driver.set_page_load_timeout(30)
        wait = WebDriverWait(driver, 20, poll_frequency=0.05)
        base = f"http://127.0.0.1:{dashboard_port}"
        driver.get(base + "/")

        wait.until(EC.visibility_of_element_located((By.ID, "login-form")))
        driver.find_element(By.CSS_SELECTOR, "#lang").click()  # English, to read the states
        driver.find_element(By.NAME, "user").send_keys(USER)
        driver.find_element(By.NAME, "password").send_keys(PASSWORD)
        driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
        wait.until(EC.visibility_of_element_located((By.ID, "view-alerts")))
        # The live stream is open ("Live"), so the alert can only arrive through it.
        wait.until(lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class").split())
        # A marker in the page: a reload would wipe it.
        driver.execute_script("window.__anjuNoReload = 'still here';")
        print("logged in, stream live", flush=True)

        publish(local_port, "zigbee2mqtt/smoke_3_2_hall", '{"smoke":true}')

        def card():
            cards = driver.find_elements(By.CSS_SELECTOR, "#alerts article.alert")
            return cards[0] if len(cards) == 1 else None

        alert_id = WebDriverWait(driver, 20, poll_frequency=0.05).until(
            lambda d: card() is not None and card().get_attribute("data-alert-id"))
        print(f"alert {alert_id} appeared without a reload", flush=True)

        def state_text():
            try:
                c = card()
                return c.find_element(By.CSS_SELECTOR, ".state").text if c else None
            except StaleElementReferenceException:
                return None  # re-rendered between the two lookups: ask again

        def click(action):
            def try_click(d):
                try:
                    c = card()
                    b = c.find_element(By.CSS_SELECTOR, f"button[data-action={action}]")
                    if not b.is_displayed() or not b.is_enabled():
                        return False
                    b.click()
                    return True
                except (StaleElementReferenceException, AttributeError):
                    return False
            WebDriverWait(driver, 20, poll_frequency=0.05).until(try_click)

        wait.until(lambda d: state_text() == "Raised")
        click("ack")
        wait.until(lambda d: state_text() == "Acknowledged")
        shot = os.path.join(os.path.abspath(args.out), "dashboard-acknowledged.png")
        driver.save_screenshot(shot)
        print(f"screenshot: {shot}", flush=True)
        # The same page in its default language (needs a CJK font: fonts-wqy-microhei).
        driver.find_element(By.CSS_SELECTOR, "#lang").click()
        wait.until(lambda d: state_text() == "已确认")
        shot_zh = os.path.join(os.path.abspath(args.out), "dashboard-acknowledged-zh.png")
        driver.save_screenshot(shot_zh)
        print(f"screenshot: {shot_zh}", flush=True)

        click("close")
        WebDriverWait(driver, 10, poll_frequency=0.05).until(EC.alert_is_present())
        driver.switch_to.alert.accept()  # "close this alert?"
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#alerts article.alert"))
        wait.until(EC.visibility_of_element_located((By.ID, "no-alerts")))
        err = driver.find_element(By.ID, "action-error").text
        if err:
            raise Failed(f"the page reported an action error: {err}")
        if driver.execute_script("return window.__anjuNoReload;") != "still here":
            raise Failed("the page was reloaded")
        shot2 = os.path.join(os.path.abspath(args.out), "dashboard-closed.png")
        driver.save_screenshot(shot2)
        print(f"screenshot: {shot2}", flush=True)

        # The city received the alert's transitions, in order.
        def city_changes():
            changes = []
            for topic, payload in city_messages():
                if not topic.startswith(f"anju/v1/{SITE}/alert/"):  # the topic tree: alert/<kind>
                    continue
                try:
                    j = json.loads(payload)
                except ValueError:
                    continue
                if j.get("alert_id") == alert_id:
                    changes.append(j.get("change"))
            return changes if "closed" in changes else None

        changes = wait_until(city_changes, 20, "the city to receive the closed alert")
        print(f"city received for {alert_id}: {changes}", flush=True)
        if changes != ["raised", "acknowledged", "closed"]:
            raise Failed(f"the city got {changes}, expected raised, acknowledged, closed")

        driver.quit()
        driver = None
        rc = procs.stop(anjud, 15)
        if rc != 0:
            raise Failed(f"anjud exited with {rc} on SIGTERM")
        ok = True
        print("PASS: browser dashboard test", flush=True)
    except Failed as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except Exception as e:  # selenium timeouts and the rest: a failure with its reason
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
    finally:
        if driver is not None:
            if not ok:
                try:
                    shot = os.path.join(os.path.abspath(args.out), "dashboard-failure.png")
                    driver.save_screenshot(shot)
                    print(f"screenshot of the failure: {shot}", file=sys.stderr)
                except Exception:
                    pass
            driver.quit()
        procs.stop_all()
        if not ok:
            procs.dump_logs()
        if ok and not os.environ.get("ANJU_IT_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        elif not ok:
            print(f"work dir kept: {work}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
