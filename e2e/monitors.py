"""Bedside monitors end to end: a running `keta demo --mllp-bind`, messages sent with an outside
client (the PyPI `hl7` package's `mllp_send`), then checked through the JSON API and the review
page. Run by e2e/monitors.sh, which starts the server and passes its addresses.

Checks: a reading from chair 3's monitor lands on the session checked in there (source monitor);
a desaturation raises the SpO2 alert once; a retransmitted message (same control id) is ACKed AA
again and recorded once; a frame that is not ORU^R01 gets AR; a reading for an empty chair gets AE
and shows on the review page, not on any chart.
"""

import datetime
import http.cookiejar
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

BASE = os.environ["KETA_BASE"]
MLLP_HOST, MLLP_PORT = os.environ["KETA_MLLP"].rsplit(":", 1)
KETA = os.environ["KETA_BIN"]
MLLP_SEND = os.environ["MLLP_SEND"]

jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
csrf = None
cookie = None


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if csrf:
        req.add_header("x-csrf-token", csrf)
    if cookie:
        # The session cookie is __Host- (Secure): send it by hand over the loopback's plain HTTP.
        req.add_header("cookie", cookie)
    with opener.open(req) as r:
        global cookie_seen
        cookie_seen = r.headers.get_all("set-cookie") or []
        text = r.read().decode()
        return json.loads(text) if r.headers.get("content-type", "").startswith("application/json") else text


cookie_seen = []


def login(user, key):
    global csrf
    code = subprocess.check_output([KETA, "totp", key]).decode().strip()
    r = call("POST", "/api/v1/auth/login", {"username": user, "password": "ketamine demo clinic", "code": code})
    csrf = r["csrf_token"]
    global cookie
    cookie = next(c.split(";")[0] for c in cookie_seen if c.startswith("__Host-keta="))


def now_hl7(delta_s=0):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta_s)
    return t.strftime("%Y%m%d%H%M%S+0000")


def oru(control, bed, spo2, sys_=124, dia=78, delta_s=0):
    t = now_hl7(delta_s)
    return "\n".join([
        f"MSH|^~\\&|GATEWAY|{bed}|KETA|CLINIC|{t}||ORU^R01^ORU_R01|{control}|P|2.6",
        "PID|||SIM-1^^^SIM^MR",
        f"PV1||O|INFUSION^^{bed}",
        f"OBR|1|{control}|{control}|182777000^monitoring of patient^SNOMED-CT|||{t}",
        f"OBX|1|NM|150021^MDC_PRESS_BLD_NONINV_SYS^MDC||{sys_}|266016^MDC_DIM_MMHG^MDC|||||R",
        f"OBX|2|NM|150022^MDC_PRESS_BLD_NONINV_DIA^MDC||{dia}|266016^MDC_DIM_MMHG^MDC|||||R",
        "OBX|3|NM|147842^MDC_ECG_HEART_RATE^MDC||72|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R",
        f"OBX|4|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||{spo2}|262688^MDC_DIM_PERCENT^MDC|||||R",
    ]) + "\n"


def send(*messages):
    """Sends with mllp_send --loose; returns the (MSA-1, MSA-2) of each ACK printed."""
    with tempfile.NamedTemporaryFile("w", suffix=".hl7", delete=False) as f:
        f.write("".join(messages))
        name = f.name
    out = subprocess.check_output([MLLP_SEND, "--loose", "-f", name, "-p", MLLP_PORT, MLLP_HOST], timeout=60)
    os.unlink(name)
    acks = []
    for line in out.decode("utf-8", "replace").replace("\x0b", "").replace("\x1c", "").split("\r"):
        if line.startswith("MSA|"):
            fields = line.split("|")
            acks.append((fields[1], fields[2] if len(fields) > 2 else ""))
    return acks


def check(ok, what):
    if not ok:
        print(f"FAIL: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


login("rn.demo", "KETADEMONURSEAAAAAAAAAAAAAAAAAAA")

# The session checked in to Chair 3 today (the demo's board puts one there).
sites = call("GET", "/api/v1/sites")
today = datetime.datetime.now(datetime.timezone.utc)
frm = (today - datetime.timedelta(hours=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
to = (today + datetime.timedelta(hours=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
target = None
empty_chair = None
for site in sites:
    chairs = {c["id"]: c["name"] for c in call("GET", f"/api/v1/sites/{site['id']}/chairs")}
    if "Chair 3" not in chairs.values():
        continue
    sessions = call("GET", f"/api/v1/sites/{site['id']}/sessions?from={frm}&to={to}")
    active = {s["chair_id"]: s for s in sessions if s["state"] in ("checked_in", "pre_dose_checks", "dosing", "monitoring")}
    for cid, name in chairs.items():
        if name == "Chair 3" and cid in active:
            target = active[cid]
        if name.startswith("Chair ") and cid not in active and empty_chair is None:
            empty_chair = name.replace("Chair ", "CHAIR-")
    break
check(target is not None, "the demo has a session checked in to Chair 3")
check(empty_chair is not None, "the demo has an empty chair")
sid = target["id"]
before = len(call("GET", f"/api/v1/sessions/{sid}/vitals"))

acks = send(oru("E2E-1", "CHAIR-3", 97))
check(acks == [("AA", "E2E-1")], f"a reading from chair 3's monitor is accepted: {acks}")
vitals = call("GET", f"/api/v1/sessions/{sid}/vitals")
check(len(vitals) == before + 1 and vitals[-1]["source"] == "monitor", "it is on chair 3's session, marked as a monitor reading")

# A retransmission: same control id, acknowledged again, recorded once.
acks = send(oru("E2E-1", "CHAIR-3", 97))
check(acks == [("AA", "E2E-1")], f"a retransmission is acknowledged AA again: {acks}")
check(len(call("GET", f"/api/v1/sessions/{sid}/vitals")) == before + 1, "and recorded once")

# A desaturation streamed: three low readings, one alert.
acks = send(*(oru(f"E2E-D{i}", "CHAIR-3", 84 - i, delta_s=i) for i in range(3)))
check([a[0] for a in acks] == ["AA"] * 3, f"the desaturation readings are accepted: {acks}")
alerts = [a for a in call("GET", f"/api/v1/alerts?session_id={sid}&open=true") if a["rule"] == "spo2_below_floor"]
check(len(alerts) == 1, f"one SpO2 alert for the episode, not one per reading ({len(alerts)})")

# Malformed: not ORU^R01 (AR), and a reading for an empty chair (AE, review list).
acks = send("MSH|^~\\&|GATEWAY|X|KETA|CLINIC|20261207101500||ADT^A01|E2E-BAD|P|2.6\nEVN|A01\n")
check(acks == [("AR", "E2E-BAD")], f"an ADT message is rejected with AR naming it: {acks}")
acks = send(oru("E2E-EMPTY", empty_chair, 96))
check(acks == [("AE", "E2E-EMPTY")], f"a reading for an empty chair gets AE: {acks}")
page = call("GET", "/monitors/review")
check(f"INFUSION^^{empty_chair}" in page and "no session is active" in page, "it is on the review page")
print("monitors end to end: all checks passed")
