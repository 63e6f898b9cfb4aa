package tests

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"mqttdemo/tests/harness"
)

// TestLivePageInBrowser opens the broker's live page in headless Chromium, with a subscriber and
// a publisher running, and reads from the page's DOM that the clients, the subscription and a
// rising message count appear, that a payload of HTML is shown as text, that no id or address is
// broken over two lines at 1280 px, and that the totals say "1 subscription".
//
// With MQTTDEMO_SCREENSHOT=/tmp/page.png (a relative path is from the tests directory) it also
// saves what the browser shows, once a few seconds of messages are on the chart. Not for
// docs/livepage.png: that one shows the page as scripts/demo.sh makes it, without test payloads.
func TestLivePageInBrowser(t *testing.T) {
	chromium := harness.Tool(t, "chromium") // Debian's; scripts/install-deps.sh installs it
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil, "-http-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`http=(http://\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no http= address on the started line")
	}
	page := m[1] + "/"

	// Ids as long as the ones the clients make up (mqttsubscriber-2a228b), so the tables are as wide as a reader's.
	const subID, pubID = "mqttsubscriber-live01", "mqttpublisher-live01"
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-id", subID, "-qos", "1")
	sub.WaitFor(t, `SUBSCRIBED\s+mytopic`)
	retained := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", "live-retain",
		"-topic", "demo/retained", "-retain", "-count", "1", "-message", `<b id="injected">kept</b>`)
	if code := retained.Exit(t); code != 0 {
		t.Fatalf("retained publisher exit status %d", code)
	}
	// Bounded: 1200 messages at 10 a second outlast the test.
	harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", pubID, "-interval", "100ms", "-count", "1200")

	browser := startChromium(t, chromium)
	session := browser.open(t, page)

	var first int
	harness.Eventually(t, func() bool {
		s := readPage(t, browser, session)
		first = s.Count
		return s.has(subID) && s.has(pubID) && s.Subs["mytopic"] == subID+" (QoS 1)" && s.Count > 0 &&
			strings.Contains(s.Lines, "SUBSCRIBED   client="+subID+" filter=mytopic granted_qos=1") &&
			s.Retained == `<b id="injected">kept</b>`
	}, "the page to show %s, %s, the subscription to mytopic, a message count and the retained message", subID, pubID)

	var s pageState
	harness.Eventually(t, func() bool {
		s = readPage(t, browser, session)
		return s.Count > first
	}, "the message count of mytopic to rise above %d", first)
	if s.Injected {
		t.Error("a payload of HTML became an element of the page")
	}
	if len(s.Wrapped) > 0 {
		t.Errorf("cells broken over two lines: %q", s.Wrapped)
	}
	if !regexp.MustCompile(`(^| )1 subscription( |$)`).MatchString(s.Totals) {
		t.Errorf("the totals say %q, want 1 subscription", s.Totals)
	}
	if !strings.HasPrefix(s.Access, "Open:") {
		t.Errorf("without -auth the page must say it is open; it says %q", s.Access)
	}

	if path := os.Getenv("MQTTDEMO_SCREENSHOT"); path != "" {
		harness.Eventually(t, func() bool { return readPage(t, browser, session).Count >= 80 }, "80 messages on the chart")
		browser.screenshot(t, session, path)
	}
}

// pageState is what the test reads from the page's DOM.
type pageState struct {
	Clients  []string          `json:"clients"`
	Subs     map[string]string `json:"subs"` // filter: subscribers
	Count    int               `json:"count"`
	Lines    string            `json:"lines"`
	Retained string            `json:"retained"`
	Injected bool              `json:"injected"`
	Access   string            `json:"access"`
	Totals   string            `json:"totals"`
	Wrapped  []string          `json:"wrapped"` // table cells taller than one line
}

func (s pageState) has(client string) bool {
	for _, c := range s.Clients {
		if c == client {
			return true
		}
	}
	return false
}

// readPageJS returns "{}" until the page has loaded.
const readPageJS = `document.getElementById("lines") === null ? "{}" : JSON.stringify({
  clients: [...document.querySelectorAll("#clients tbody tr[data-client]")].map(r => r.getAttribute("data-client")),
  subs: Object.fromEntries([...document.querySelectorAll("#subscriptions tbody tr[data-filter]")]
    .map(r => [r.getAttribute("data-filter"), r.cells[1].textContent])),
  count: Number(([...document.querySelectorAll("#topics tbody tr[data-topic]")]
    .find(r => r.getAttribute("data-topic") === "mytopic") || {querySelector: () => ({textContent: "0"})})
    .querySelector(".count").textContent),
  lines: document.getElementById("lines").textContent,
  retained: (([...document.querySelectorAll("#retained tbody tr[data-topic]")]
    .find(r => r.getAttribute("data-topic") === "demo/retained") || {cells: [null, {textContent: ""}]}).cells[1].textContent),
  injected: document.getElementById("injected") !== null,
  access: document.getElementById("access").textContent,
  totals: document.getElementById("totals").textContent.replace(/\s+/g, " ").trim(),
  wrapped: [...document.querySelectorAll("#clients td, #subscriptions td")].filter(td => {
    const cs = getComputedStyle(td);
    return td.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom) > 1.5 * parseFloat(cs.lineHeight);
  }).map(td => td.textContent),
})`

func readPage(t *testing.T, b *devTools, session string) pageState {
	t.Helper()
	value := evalJS[string](t, b, session, readPageJS)
	var s pageState
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		t.Fatalf("reading the page: %v: %q", err, value)
	}
	return s
}

// devTools drives a headless Chromium through its DevTools protocol, over a WebSocket.
type devTools struct {
	ws   *websocket.Conn
	next int
}

// startChromium runs a headless Chromium with a fresh profile, on loopback only, and connects
// to it. It is closed, and killed with its child processes if need be, when the test ends.
func startChromium(t *testing.T, bin string) *devTools {
	t.Helper()
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1",
		"--remote-debugging-port=0", "--window-size=1280,1000", "about:blank")
	out := new(harness.Output)
	cmd.Stdout, cmd.Stderr = out, out
	inOwnGroup(cmd) // its helpers too
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	d := &devTools{}
	t.Cleanup(func() {
		if d.ws != nil {
			_ = d.ws.WriteJSON(map[string]any{"id": 1 << 30, "method": "Browser.close"})
			d.ws.Close()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		killGroup(cmd) // whatever of the group is left
		<-done
		if t.Failed() {
			t.Logf("--- chromium output:\n%s", out)
		}
	})
	// Chromium writes its port and the browser's path into the profile once it listens.
	var port, path string
	harness.Eventually(t, func() bool {
		data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		p, rest, ok := strings.Cut(string(data), "\n")
		if err != nil || !ok || strings.TrimSpace(rest) == "" {
			return false
		}
		port, path = p, strings.TrimSpace(rest)
		return true
	}, "chromium to open its DevTools port")
	if _, err := strconv.Atoi(port); err != nil {
		t.Fatalf("DevToolsActivePort: port %q", port)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://127.0.0.1:"+port+path, nil)
	if err != nil {
		t.Fatalf("connect to chromium: %v", err)
	}
	d.ws = ws
	return d
}

// call sends a command (to a page when session is not "") and decodes its result into result.
func (d *devTools) call(t *testing.T, session, method string, params, result any) {
	t.Helper()
	d.next++
	msg := map[string]any{"id": d.next, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	_ = d.ws.SetWriteDeadline(time.Now().Add(harness.Timeout))
	if err := d.ws.WriteJSON(msg); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	_ = d.ws.SetReadDeadline(time.Now().Add(harness.Timeout))
	for { // events and other answers are skipped; each read has the deadline
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := d.ws.ReadJSON(&resp); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if resp.ID != d.next {
			continue
		}
		if resp.Error != nil {
			t.Fatalf("%s: %s", method, resp.Error.Message)
		}
		if result != nil {
			if err := json.Unmarshal(resp.Result, result); err != nil {
				t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// open opens url in a new tab and returns the session that drives it.
func (d *devTools) open(t *testing.T, url string) string {
	t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	d.call(t, "", "Target.createTarget", map[string]any{"url": url}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	d.call(t, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	if attached.SessionID == "" {
		t.Fatal("Target.attachToTarget: no session for the page")
	}
	return attached.SessionID
}

// screenshot saves the page as a PNG of 1280 × 860 pixels.
func (d *devTools) screenshot(t *testing.T, session, path string) {
	t.Helper()
	d.call(t, session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1280, "height": 860, "deviceScaleFactor": 1, "mobile": false}, nil)
	var shot struct {
		Data string `json:"data"`
	}
	d.call(t, session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
