package tests

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"mqttdemo/tests/harness"
)

// TestLivePagePacketFlowInBrowser opens the live page in headless Chromium, picks (clicks) a
// publisher that sends at QoS 2, and reads from the sequence diagram that its PUBLISH, PUBREC,
// PUBREL and PUBCOMP are drawn in that order, in the right directions, under one packet id, and
// boxed as one QoS 2 exchange; the subscriber's diagram shows the broker's side of QoS 2.
//
// With MQTTDEMO_QOS2_SCREENSHOT=path (relative: from the tests directory) it saves the diagram
// as a PNG: docs/livepage-qos2.png is made so,
//
//	MQTTDEMO_QOS2_SCREENSHOT=$PWD/docs/livepage-qos2.png go test -count=1 -run TestLivePagePacketFlowInBrowser mqttdemo/tests
func TestLivePagePacketFlowInBrowser(t *testing.T) {
	chromium := harness.Tool(t, "chromium")
	b := harness.Build(t)
	server, url := harness.StartServer(t, nil, "-http-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`http=(http://\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no http= address on the started line")
	}
	const subID, pubID = "mqttsubscriber-flow01", "mqttpublisher-flow01"
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", url, "-id", subID, "-qos", "2")
	sub.WaitFor(t, `SUBSCRIBED\s+mytopic`)
	// Bounded: 600 messages at 4 a second outlast the test.
	harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", pubID, "-qos", "2",
		"-interval", "250ms", "-count", "600", "-message", "reading {n}")

	browser := startChromium(t, chromium)
	session := browser.open(t, m[1]+"/")
	harness.Eventually(t, func() bool {
		return evalJS[bool](t, browser, session, `document.querySelector('#clients tr[data-client="`+pubID+`"]') !== null`)
	}, "the page to list %s", pubID)
	evalJS[bool](t, browser, session, `document.querySelector('#clients tr[data-client="`+pubID+`"]').click(), true`)

	var exchange []flowArrow
	harness.Eventually(t, func() bool {
		exchange = qos2Exchange(readFlow(t, browser, session), "in")
		return exchange != nil
	}, "the diagram of %s to show a whole QoS 2 exchange", pubID)
	if got := evalJS[string](t, browser, session, `location.hash`); got != "#watch="+pubID {
		t.Errorf("the page's address says %q, want #watch=%s", got, pubID)
	}
	if !evalJS[bool](t, browser, session, `document.querySelector('#flow g.qos2:not(.open)[data-id="`+
		exchange[0].ID+`"][data-first="`+exchange[0].Seq+`"][data-last="`+exchange[3].Seq+`"]') !== null`) {
		t.Errorf("the exchange %v is not boxed as one QoS 2 exchange", exchange)
	}

	// The subscriber: the broker sends the PUBLISH and the PUBREL.
	evalJS[bool](t, browser, session, `document.querySelector('#clients tr[data-client="`+subID+`"]').click(), true`)
	harness.Eventually(t, func() bool {
		return qos2Exchange(readFlow(t, browser, session), "out") != nil
	}, "the diagram of %s to show a QoS 2 exchange started by the broker", subID)

	// A client watched before it connects (the id typed in, or in the page's address): its
	// whole life, from CONNECT to the connection's end, three QoS 2 messages in between.
	const shortID = "mqttpublisher-three"
	evalJS[bool](t, browser, session, `location.hash = "watch=`+shortID+`", true`)
	harness.Eventually(t, func() bool {
		return evalJS[bool](t, browser, session, `document.getElementById("flow-box").textContent.includes("No packet yet")`)
	}, "the page to watch %s", shortID)
	short := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", url, "-id", shortID, "-qos", "2",
		"-interval", "100ms", "-count", "3", "-message", "reading {n}")
	if code := short.Exit(t); code != 0 {
		t.Fatalf("%s: exit status %d", shortID, code)
	}
	want := "CONNECT in, CONNACK out, PUBLISH in, PUBREC out, PUBREL in, PUBCOMP out, PUBLISH in, PUBREC out, PUBREL in, PUBCOMP out, " +
		"PUBLISH in, PUBREC out, PUBREL in, PUBCOMP out, DISCONNECT in, CLOSED note"
	var got string
	harness.Eventually(t, func() bool {
		got = evalJS[string](t, browser, session, `[...document.querySelectorAll("#flow g[data-type]")].map(g =>
  g.dataset.type + " " + (g.dataset.dir || "note")).join(", ")`)
		return got == want
	}, "the diagram of %s to show its whole life: %s (it shows %s)", shortID, want, lazy(func() string { return got }))
	if path := os.Getenv("MQTTDEMO_QOS2_SCREENSHOT"); path != "" {
		shootElement(t, browser, session, "#flow", path)
	}
}

// flowArrow is one arrow of the diagram as the DOM has it.
type flowArrow struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Dir  string `json:"dir"`
	Seq  string `json:"seq"`
}

func readFlow(t *testing.T, b *devTools, session string) []flowArrow {
	t.Helper()
	data := evalJS[string](t, b, session, `JSON.stringify([...document.querySelectorAll("#flow g.pkt")].map(g => ({
  type: g.dataset.type, id: g.dataset.id, dir: g.dataset.dir, seq: g.dataset.seq})))`)
	var arrows []flowArrow
	if err := json.Unmarshal([]byte(data), &arrows); err != nil {
		t.Fatalf("reading the diagram: %v: %q", err, data)
	}
	return arrows
}

// qos2Exchange finds the first PUBLISH sent in direction dir followed, as the next arrows of
// its id, by PUBREC, PUBREL and PUBCOMP in their directions; nil if there is none yet.
func qos2Exchange(arrows []flowArrow, dir string) []flowArrow {
	back := map[string]string{"in": "out", "out": "in"}[dir]
	want := []struct{ typ, dir string }{{"PUBLISH", dir}, {"PUBREC", back}, {"PUBREL", dir}, {"PUBCOMP", back}}
	for i, a := range arrows {
		if a.Type != "PUBLISH" || a.Dir != dir || a.ID == "0" {
			continue
		}
		got := []flowArrow{a}
		for _, n := range arrows[i+1:] {
			if n.ID == a.ID && len(got) < len(want) {
				got = append(got, n)
			}
		}
		if len(got) < len(want) {
			continue
		}
		ok := true
		for k, w := range want {
			ok = ok && got[k].Type == w.typ && got[k].Dir == w.dir
		}
		if ok {
			return got
		}
	}
	return nil
}

// evalJS evaluates a JavaScript expression in the page and returns its value.
func evalJS[T any](t *testing.T, b *devTools, session, expr string) T {
	t.Helper()
	var res struct {
		Result struct {
			Value T `json:"value"`
		} `json:"result"`
		ExceptionDetails any `json:"exceptionDetails"`
	}
	b.call(t, session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	if res.ExceptionDetails != nil {
		t.Fatalf("%s: %v", expr, res.ExceptionDetails)
	}
	return res.Result.Value
}

// shootElement saves the element that selector finds as a PNG, at a window 1280 px wide.
func shootElement(t *testing.T, b *devTools, session, selector, path string) {
	t.Helper()
	b.call(t, session, "Emulation.setDeviceMetricsOverride",
		map[string]any{"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": false}, nil)
	var r struct{ X, Y, W, H float64 }
	data := evalJS[string](t, b, session, `(() => { const r = document.querySelector("`+selector+`").getBoundingClientRect();
  return JSON.stringify({x: r.x + scrollX, y: r.y + scrollY, w: r.width, h: r.height}); })()`)
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		t.Fatalf("%s: %v", selector, err)
	}
	var shot struct {
		Data string `json:"data"`
	}
	b.call(t, session, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true,
		"clip": map[string]any{"x": r.X, "y": r.Y, "width": r.W, "height": r.H, "scale": 1}}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
