#!/usr/bin/env python3
"""Drives headless Chromium through Gatehouse's sign-in, over the DevTools protocol on a pipe
(--remote-debugging-pipe: no extra packages, no debugging port). Used by BrowserSignInChromiumTests.

    sign_in.py CHROMIUM BASE_URL USER PASSWORD ARTIFACT_DIR

Opens BASE_URL/ as a browser would, expects to land on the sign-in page, saves screenshots of it
(desktop 1280x800 and phone 390x844), signs in through the form and prints, as one JSON object,
where the browser ended up and what the page said."""
import base64, json, os, shutil, subprocess, sys, tempfile, time

chromium, base, user, password, artifacts = sys.argv[1:6]
os.makedirs(artifacts, exist_ok=True)
to_browser_r, to_browser_w = os.pipe()
from_browser_r, from_browser_w = os.pipe()
profile = tempfile.mkdtemp(prefix="gatehouse-chromium-")
proc = subprocess.Popen(
    [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
     "--disable-background-networking", "--disable-component-update", "--disable-sync", "--metrics-recording-only",
     "--disable-features=Translate,MediaRouter,OptimizationHints", "--remote-debugging-pipe",
     f"--user-data-dir={profile}", "about:blank"],
    pass_fds=(3, 4, to_browser_r, from_browser_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    # Chromium reads commands from fd 3 and writes to fd 4 (kept open: preexec runs before close_fds).
    preexec_fn=lambda: (os.dup2(to_browser_r, 3), os.dup2(from_browser_w, 4)))
os.close(to_browser_r)
os.close(from_browser_w)
pending = b""
next_id = 0
events = []

def send(method, params=None, session=None):
    global next_id, pending
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session:
        message["sessionId"] = session
    os.write(to_browser_w, json.dumps(message).encode() + b"\0")
    deadline = time.time() + 30
    while time.time() < deadline:
        while b"\0" in pending:
            raw, pending = pending.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            events.append(reply)
        chunk = os.read(from_browser_r, 1 << 20)
        if not chunk:
            raise RuntimeError("chromium closed the pipe")
        pending += chunk
    raise RuntimeError(f"{method}: no answer")

def wait_for_load(session, since):
    deadline = time.time() + 30
    while time.time() < deadline:
        if any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == session for e in events[since:]):
            return
        send("Runtime.evaluate", {"expression": "1"}, session)  # pumps events
        time.sleep(0.05)
    raise RuntimeError("page did not load")

def evaluate(session, expression):
    return send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)["result"].get("value")

def screenshot(session, name, width, height, mobile):
    send("Emulation.setDeviceMetricsOverride",
         {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile}, session)
    data = send("Page.captureScreenshot", {"format": "png"}, session)["data"]
    path = os.path.join(artifacts, name)
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))
    return path

try:
    target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    send("Page.enable", session=session)
    mark = len(events)
    send("Page.navigate", {"url": base + "/"}, session)
    wait_for_load(session, mark)
    landed = evaluate(session, "location.pathname + location.search")
    shots = [screenshot(session, "login-desktop.png", 1280, 800, False), screenshot(session, "login-phone.png", 390, 844, True)]
    send("Emulation.clearDeviceMetricsOverride", session=session)
    form = evaluate(session, "JSON.stringify({user: !!document.querySelector('input[name=username]'),"
                             " password: !!document.querySelector('input[name=password]'),"
                             " scripts: document.scripts.length})")
    mark = len(events)
    evaluate(session, f"document.querySelector('input[name=username]').value = {json.dumps(user)};"
                      f"document.querySelector('input[name=password]').value = {json.dumps(password)};"
                      "document.querySelector('form').submit(); true")
    wait_for_load(session, mark)
    after = evaluate(session, "JSON.stringify({path: location.pathname, text: document.body.innerText})")
    cookies = send("Network.getCookies", {"urls": [base + "/"]}, session).get("cookies", [])
    print(json.dumps({"landed": landed, "form": json.loads(form), "after": json.loads(after), "screenshots": shots,
                      "cookies": [{k: c[k] for k in ("name", "httpOnly", "sameSite", "path")} for c in cookies]}))
finally:
    proc.kill()
    proc.wait()
    # The profile is Chromium's whole state for this run: nothing of it is kept.
    shutil.rmtree(profile, ignore_errors=True)
