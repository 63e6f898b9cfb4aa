package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mqttdemo/tests/harness"
)

// TestPrometheusScrapesBroker: a real Prometheus (Debian's package) scrapes the broker's
// /metrics every second, with docs/alerts.yml loaded, while the demo's subscriber and
// publisher run. Prometheus' HTTP API must report the clients connected and the message rate
// the clients made, then the exact totals; every alert rule and every query of
// docs/grafana-dashboard.json must evaluate without error on the data Prometheus holds.
func TestPrometheusScrapesBroker(t *testing.T) {
	promBin := harness.Tool(t, "prometheus") // apt-get install prometheus; CI fails without it
	b := harness.Build(t)
	server, broker := harness.StartServer(t, nil, "-http-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`http=http://(\S+)`).FindStringSubmatch(server.WaitFor(t, `STARTED`))
	if m == nil {
		t.Fatal("no http= address on the started line")
	}
	prom := startPrometheus(t, promBin, m[1])
	prom.eventually(t, `up{job="mqttserver"}`, func(v float64) bool { return v == 1 }, "the broker scraped (up 1)")

	const count, perSecond = 100, 10 // 10 s of messages, a few scrapes' worth of rate
	sub := harness.Start(t, "mqttsubscriber", b.Subscriber, nil, "-broker", broker, "-id", "prom-sub", "-qos", "1")
	sub.WaitFor(t, `SUBSCRIBED\s+mytopic`)
	pub := harness.Start(t, "mqttpublisher", b.Publisher, nil, "-broker", broker, "-id", "prom-pub", "-qos", "1",
		"-interval", fmt.Sprint(1000/perSecond)+"ms", "-count", strconv.Itoa(count))

	prom.eventually(t, "mqttserver_clients_connected", func(v float64) bool { return v == 2 }, "2 clients connected")
	// rate() over 3 s: at least 3 samples at a 1 s scrape. The publisher's interval may slip on
	// a busy machine, not halve.
	prom.eventually(t, "rate(mqttserver_messages_received_total[3s])",
		func(v float64) bool { return v >= perSecond/2 && v <= perSecond*3/2 }, fmt.Sprintf("a rate of about %d messages a second", perSecond))

	if code := pub.Exit(t); code != 0 {
		t.Fatalf("publisher exit status %d\n%s", code, pub.Out)
	}
	if got := len(sub.WaitCount(t, `RECEIVED\s+prom-sub mytopic `, count)); got != count {
		t.Fatalf("the subscriber printed %d messages, want %d", got, count)
	}
	prom.eventually(t, "mqttserver_messages_received_total", func(v float64) bool { return v == count },
		fmt.Sprintf("%d messages received, as the publisher sent", count))
	prom.eventually(t, "mqttserver_messages_sent_total", func(v float64) bool { return v == count },
		fmt.Sprintf("%d messages sent, as the subscriber printed", count))
	prom.eventually(t, "mqttserver_clients_connected", func(v float64) bool { return v == 1 }, "the subscriber alone connected")

	prom.eventuallyRulesHealthy(t)
	for _, expr := range dashboardQueries(t) {
		switch v, err := prom.query(strings.ReplaceAll(expr, "$__rate_interval", "5s")); {
		case err != nil:
			t.Errorf("docs/grafana-dashboard.json: %v", err)
		case len(v) == 0:
			t.Errorf("docs/grafana-dashboard.json: %q: no series", expr)
		}
	}
}

// TestAlertRules: docs/alerts.yml passes `promtool check rules`.
func TestAlertRules(t *testing.T) {
	promtool := harness.Tool(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", "../docs/alerts.yml").CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules docs/alerts.yml: %v\n%s", err, out)
	}
}

// prometheus is a Prometheus server the test started.
type prometheus struct {
	api string // http://127.0.0.1:port/api/v1/
}

// startPrometheus runs Prometheus on a free loopback port with its data in a temporary
// directory, scraping target (host:port) every second and evaluating docs/alerts.yml.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../docs/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: mqttserver
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	p := harness.Start(t, "prometheus", bin, nil, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen)
	p.WaitFor(t, `Server is ready to receive web requests`)
	return &prometheus{api: "http://" + listen + "/api/v1/"}
}

// query runs an instant query and returns the values of its series, or an error naming what
// Prometheus said.
func (p *prometheus) query(expr string) ([]float64, error) {
	resp, err := http.Get(p.api + "query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"` // [time, "value"]
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: %w", expr, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s: %s", expr, r.Status, r.Error)
	}
	var out []float64
	for _, s := range r.Data.Result {
		text, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", expr, s.Value[1], err)
		}
		out = append(out, v)
	}
	return out, nil
}

// eventually waits until expr has one series whose value satisfies ok.
func (p *prometheus) eventually(t *testing.T, expr string, ok func(float64) bool, what string) {
	t.Helper()
	var last []float64
	var err error
	harness.Eventually(t, func() bool {
		last, err = p.query(expr)
		return err == nil && len(last) == 1 && ok(last[0])
	}, "%s: Prometheus says %s = %v (error: %v)", what, expr,
		lazy(func() string { return fmt.Sprint(last) }), lazy(func() string { return fmt.Sprint(err) }))
}

// lazy formats a value when the failure message is printed, not when the wait begins.
type lazy func() string

func (l lazy) String() string { return l() }

// eventuallyRulesHealthy waits until Prometheus has evaluated every rule of docs/alerts.yml,
// each without error.
func (p *prometheus) eventuallyRulesHealthy(t *testing.T) {
	t.Helper()
	var problems []string
	harness.Eventually(t, func() bool {
		problems = nil
		resp, err := http.Get(p.api + "rules")
		if err != nil {
			problems = []string{err.Error()}
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name      string `json:"name"`
						Health    string `json:"health"`
						LastError string `json:"lastError"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			problems = []string{err.Error()}
			return false
		}
		n := 0
		for _, g := range r.Data.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					problems = append(problems, rule.Name+": "+rule.Health+" "+rule.LastError)
				}
			}
		}
		if n == 0 {
			problems = append(problems, "no rules loaded")
		}
		return len(problems) == 0
	}, "every rule of docs/alerts.yml evaluated without error: %v", lazy(func() string { return fmt.Sprint(problems) }))
}

// dashboardQueries are the PromQL expressions of docs/grafana-dashboard.json.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			out = append(out, target.Expr)
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/grafana-dashboard.json has no queries")
	}
	return out
}
