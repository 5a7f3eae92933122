// Package deploy_test checks the operator files under deploy/: the systemd
// unit with systemd-analyze, the Prometheus alert rules and the Grafana
// dashboard with Prometheus's own parsers, and that every metric they name
// is one mayflyd exports.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/mayfly-im/mayfly/cmd/mayflyd/app/apptest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	apptest.RemoveBinaries()
	os.Exit(code)
}

// TestDeploySystemdUnit verifies the unit with systemd-analyze (ExecStart
// pointed at a freshly built mayflyd, as verify checks that it exists) and
// holds its hardening to an exposure level of at most 2.0 of 10.
func TestDeploySystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (apt-get install systemd)")
	}
	unit, err := os.ReadFile("systemd/mayflyd.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=mayfly", "NoNewPrivileges=yes", "ProtectSystem=strict", "ExecStart=/usr/local/bin/mayflyd\n"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("mayflyd.service lacks %q", want)
		}
	}
	bin := apptest.Binary(t, "github.com/mayfly-im/mayfly/cmd/mayflyd", false)
	path := filepath.Join(t.TempDir(), "mayflyd.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/mayflyd"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(analyze, "security", "--offline=true", "--threshold=20", path).CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security over 2.0: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`Overall exposure level for \S+: [0-9.]+ \w+`).Find(out); m != nil {
		t.Log(string(m))
	}
}

// exported returns the metric families mayflyd's sources register.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	re := regexp.MustCompile(`"(mayfly_[a-z_]+)"`)
	for _, f := range []string{"../gateway/metrics.go", "../cmd/mayflyd/app/metrics.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric families in the sources: %v", len(names), names)
	}
	return names
}

// checkNames fails for every metric expr names that mayflyd does not
// export (histograms also as _bucket, _count and _sum).
func checkNames(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	e, err := parser.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q: %v", where, expr, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok || !strings.HasPrefix(vs.Name, "mayfly_") {
			return nil
		}
		base := vs.Name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(vs.Name, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			t.Errorf("%s: %q names %s, which mayflyd does not export", where, expr, vs.Name)
		}
		return nil
	})
}

// TestDeployAlertRules parses the rules as Prometheus does and checks the
// alerts docs/operations.md promises are there.
func TestDeployAlertRules(t *testing.T) {
	groups, errs := rulefmt.ParseFile("prometheus/mayfly-rules.yml", false)
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.Fatal("no rule groups")
	}
	known := exported(t)
	alerts := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			checkNames(t, r.Alert, r.Expr, known)
		}
	}
	for _, want := range []string{"MayflyDown", "MayflyBurnFailures", "MayflySendLatencyHigh", "MayflyJetStreamUnavailable", "MayflyPostgresDown"} {
		if !alerts[want] {
			t.Errorf("alert %s missing", want)
		}
	}

	var conf struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName string `yaml:"job_name"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile("prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if len(conf.RuleFiles) != 1 || conf.RuleFiles[0] != "mayfly-rules.yml" || len(conf.ScrapeConfigs) == 0 || conf.ScrapeConfigs[0].JobName != "mayfly" {
		t.Errorf("prometheus.yml: %+v, want rule file mayfly-rules.yml and job mayfly (the rules use it)", conf)
	}
}

// TestDeployDashboard parses every query of the Grafana dashboard and
// checks it shows the families operators need.
func TestDeployDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/mayfly-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	known := exported(t)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			checkNames(t, p.Title, strings.ReplaceAll(q.Expr, "$__rate_interval", "5m"), known)
			for _, m := range regexp.MustCompile(`mayfly_[a-z_]+`).FindAllString(q.Expr, -1) {
				used[strings.TrimSuffix(m, "_bucket")] = true
			}
		}
	}
	// The families an operator needs (issue 11); a new family need not
	// break this test, but should get a panel too.
	for _, name := range []string{
		"mayfly_messages_sent_total", "mayfly_messages_refused_total", "mayfly_messages_delivered_total",
		"mayfly_messages_burned_total", "mayfly_message_burn_failures_total", "mayfly_messages_replayed_total",
		"mayfly_message_send_seconds", "mayfly_message_deliver_seconds", "mayfly_message_burn_seconds",
		"mayfly_replay_messages", "mayfly_native_requests_total", "mayfly_jetstream_up",
		"mayfly_jetstream_api_errors_total", "mayfly_jetstream_timeouts_total", "mayfly_postgres_up",
		"mayfly_postgres_pool_connections", "mayfly_presence_writes_total", "mayfly_ws_connections",
		"mayfly_nats_client_connections",
	} {
		if !known[name] {
			t.Errorf("mayflyd no longer exports %s", name)
		}
		if !used[name] {
			t.Errorf("the dashboard shows no panel for %s", name)
		}
	}
}
