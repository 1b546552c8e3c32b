package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/naturecast/evosearch/dist"
)

func TestWorkerAndDistUsageErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "s")
	cases := []struct {
		env  string
		args []string
		want string
	}{
		{"", []string{"worker"}, "--nats is required"},
		{"", []string{"worker", "--nats", "nats://127.0.0.1:1", "extra"}, `worker takes no arguments, got "extra"`},
		{"", []string{"worker", "--nats", "nats://127.0.0.1:1", "--device", "tpu"}, `--device "tpu"`},
		{"", []string{"worker", "--nats", "nats://127.0.0.1:1", "--slots", "-2"}, "--slots -2"},
		{"", []string{"worker", "--nats", "nats://127.0.0.1:1", "--idle-exit", "-1s"}, "--idle-exit -1s"},
		{"", []string{"worker", "--nats", "nats://127.0.0.1:1", "--task-timeout", "-1s"}, "--task-timeout -1s"},
		{"", tinySearch(out, "--workers", "many"), `--workers "many"`},
		{"", tinySearch(out, "--workers", "nats", "--nats", "nats://h:4222", "--nats-listen", "127.0.0.1:0"), "either uses an external server or embeds one"},
		{"", tinySearch(out, "--nats", "nats://h:4222"), "--workers 2 trains in this process"},
		{"", tinySearch(out, "--workers", "nats", "--nats-listen", "localhost"), `--nats-listen "localhost"`},
		{"", tinySearch(out, "--workers", "nats", "--slots", "0"), "no worker could reach it"},
		{"", tinySearch(out, "--workers", "nats", "--slots", "-5"), "--slots -5"},
		{"", tinySearch(out, "--workers", "nats", "--device", "cuda-emu"), "start them with evosearch worker --device cuda-emu"},
		{dist.EnvAckWait + "=soon", tinySearch(out, "--workers", "nats"), dist.EnvAckWait},
	}
	// An unreachable external server is a failure (exit 1) naming it, not a hang.
	code, _, stderr := runCLI(tinySearch(filepath.Join(t.TempDir(), "x"), "--workers", "nats", "--nats", "nats://127.0.0.1:1")...)
	if code != 1 || !strings.Contains(stderr, "127.0.0.1:1") {
		t.Errorf("unreachable --nats: exit %d, %q", code, stderr)
	}
	for _, c := range cases { // the environment case last: t.Setenv lasts to the end
		if c.env != "" {
			k, v, _ := strings.Cut(c.env, "=")
			t.Setenv(k, v)
		}
		code, _, stderr := runCLI(c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused search created its output folder")
	}
}

// TestWorkerStopsOnSignalBeforeAQueue: a worker waiting for a search that
// never comes exits 0 on SIGTERM.
func TestWorkerStopsOnSignalBeforeAQueue(t *testing.T) {
	eng, err := dist.StartEngine(dist.EngineConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown()
	w := startProc(t, "worker", nil, "worker", "--nats", eng.URL(), "--slots", "1", "--name", "idle")
	w.waitFor(t, "waiting for a search's queue", 20*time.Second)
	w.cmd.Process.Signal(syscall.SIGTERM)
	if code := w.wait(t, 20*time.Second); code != 0 || !strings.Contains(w.output(), "stopped before any search appeared") {
		t.Errorf("exit %d: %s", code, w.output())
	}
}

// TestSlurmRecipe checks the sbatch script's syntax and runs it as a plain
// shell script against a queue: it starts a worker and passes SIGTERM on,
// and the worker stops cleanly (exit 0).
func TestSlurmRecipe(t *testing.T) {
	script := filepath.Join("..", "deploy", "slurm", "evosearch-workers.sbatch")
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", script, err, out)
	}
	text := string(readTestFile(t, script))
	for _, want := range []string{"#SBATCH --array=", "#SBATCH --signal=B:TERM@", "NATS_URL", "trap "} {
		if !strings.Contains(text, want) {
			t.Errorf("%s lacks %q", script, want)
		}
	}
	bin := evosearchBin(t)
	eng, err := dist.StartEngine(dist.EngineConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Shutdown()
	nc, err := eng.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dist.SetupQueue(ctx, nc, dist.DefaultTunables()); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: "sbatch script", done: make(chan struct{})}
	p.cmd = exec.Command("bash", script)
	p.cmd.Env = append(os.Environ(), "NATS_URL="+eng.URL(), "EVOSEARCH_BIN="+bin, "SLURM_CPUS_PER_TASK=1",
		"SLURM_ARRAY_JOB_ID=7", "SLURM_ARRAY_TASK_ID=3")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	defer func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	}()
	p.waitFor(t, `worker slurm-7-3: queue found`, 20*time.Second)
	p.cmd.Process.Signal(syscall.SIGTERM) // to the batch shell only, as --signal=B: does
	if code := p.wait(t, 20*time.Second); code != 0 || !strings.Contains(p.output(), "worker slurm-7-3: stopped:") {
		t.Errorf("script exit %d after SIGTERM: %s", code, p.output())
	}
}

// TestKubernetesRecipe parses the worker Job (a block-style YAML subset, as
// no YAML library is a dependency) and checks it against the batch/v1 Job
// schema's field names and the worker's needs: GPU request, NATS address
// and credentials, SIGTERM grace.
func TestKubernetesRecipe(t *testing.T) {
	path := filepath.Join("..", "deploy", "k8s", "worker-job.yaml")
	doc, err := parseYAMLSubset(string(readTestFile(t, path)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	known := func(where string, v any, fields ...string) {
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s is not a mapping", where)
			return
		}
		for k := range m {
			if !slices.Contains(fields, k) {
				t.Errorf("%s has field %q, not in the schema", where, k)
			}
		}
	}
	if get(doc, "apiVersion") != "batch/v1" || get(doc, "kind") != "Job" || get(doc, "metadata", "name") == nil {
		t.Fatalf("not a batch/v1 Job with a name: %v", doc)
	}
	known("the Job", doc, "apiVersion", "kind", "metadata", "spec")
	known("spec", get(doc, "spec"), "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode",
		"completions", "managedBy", "manualSelector", "maxFailedIndexes", "parallelism", "podFailurePolicy",
		"podReplacementPolicy", "selector", "successPolicy", "suspend", "template", "ttlSecondsAfterFinished")
	pod := get(doc, "spec", "template", "spec")
	known("the pod spec", pod, "activeDeadlineSeconds", "affinity", "containers", "dnsPolicy", "hostNetwork", "imagePullSecrets",
		"initContainers", "nodeName", "nodeSelector", "priorityClassName", "restartPolicy", "runtimeClassName",
		"schedulerName", "securityContext", "serviceAccountName", "terminationGracePeriodSeconds", "tolerations", "volumes")
	if rp := get(pod, "restartPolicy"); rp != "OnFailure" && rp != "Never" {
		t.Errorf("restartPolicy %v: a Job's pods need OnFailure or Never", rp)
	}
	if g := get(pod, "terminationGracePeriodSeconds"); g == nil || g == "0" {
		t.Errorf("no grace period for the worker to hand its tasks back")
	}
	cs, _ := get(pod, "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("want one container, got %v", get(pod, "containers"))
	}
	c := cs[0]
	known("the container", c, "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe",
		"name", "ports", "readinessProbe", "resources", "securityContext", "startupProbe", "volumeMounts", "workingDir")
	args, _ := get(c, "args").([]any)
	if len(args) == 0 || args[0] != "worker" {
		t.Errorf("container args %v do not run evosearch worker", args)
	}
	for _, part := range []string{"requests", "limits"} {
		if get(c, "resources", part, "nvidia.com/gpu") != "1" {
			t.Errorf("resources.%s does not ask for one GPU", part)
		}
	}
	env := map[string]any{}
	envList, _ := get(c, "env").([]any)
	for _, e := range envList {
		known("an env entry", e, "name", "value", "valueFrom")
		name, _ := get(e, "name").(string)
		env[name] = e
	}
	for _, name := range []string{"NATS_URL", "NATS_CREDS"} {
		if env[name] == nil {
			t.Errorf("env lacks %s", name)
		}
	}
	// The credentials come from a mounted secret.
	mounted := false
	vols, _ := get(pod, "volumes").([]any)
	for _, v := range vols {
		if get(v, "secret", "secretName") != nil {
			mounted = true
		}
	}
	if !mounted {
		t.Error("no secret volume for the NATS credentials")
	}
	// Cross-check with a real YAML parser where one is at hand.
	if py, err := exec.LookPath("python3"); err == nil {
		check := fmt.Sprintf("import yaml,sys; d=yaml.safe_load(open(%q)); sys.exit(0 if d['kind']=='Job' and d['spec']['template']['spec']['containers'][0]['args'][0]=='worker' else 1)", path)
		if out, err := exec.Command(py, "-c", check).CombinedOutput(); err != nil && !strings.Contains(string(out), "No module named") {
			t.Errorf("python yaml: %v\n%s", err, out)
		}
	}
}

// parseYAMLSubset parses block-style YAML: mappings, sequences ("- "),
// plain or quoted scalars, full-line comments. Flow style, anchors and
// multi-line scalars are errors.
func parseYAMLSubset(text string) (any, error) {
	type line struct {
		indent int
		text   string
		no     int
	}
	var ls []line
	for i, raw := range strings.Split(text, "\n") {
		s := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimLeft(s, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.Contains(s, "\t") {
			return nil, fmt.Errorf("line %d: tab", i+1)
		}
		ls = append(ls, line{indent: len(s) - len(trimmed), text: trimmed, no: i + 1})
	}
	pos := 0
	scalar := func(s string, no int) (any, error) {
		switch s {
		case "{}":
			return map[string]any{}, nil
		case "[]":
			return []any{}, nil
		}
		if strings.ContainsAny(s[:min(1, len(s))], "{[&*|>") {
			return nil, fmt.Errorf("line %d: unsupported YAML %q", no, s)
		}
		if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
			return s[1 : len(s)-1], nil
		}
		return s, nil
	}
	var block func(indent int) (any, error)
	// entry parses "key: value" or "key:" followed by a deeper block.
	entry := func(m map[string]any, text string, indent, no int) error {
		k, v, ok := strings.Cut(text, ":")
		if !ok || k == "" || (v != "" && v[0] != ' ') {
			return fmt.Errorf("line %d: want key: value, got %q", no, text)
		}
		if _, dup := m[k]; dup {
			return fmt.Errorf("line %d: duplicate key %q", no, k)
		}
		v = strings.TrimSpace(v)
		if v != "" {
			val, err := scalar(v, no)
			m[k] = val
			return err
		}
		if pos < len(ls) && (ls[pos].indent > indent || ls[pos].indent == indent && strings.HasPrefix(ls[pos].text, "- ")) {
			val, err := block(ls[pos].indent)
			m[k] = val
			return err
		}
		m[k] = nil
		return nil
	}
	block = func(indent int) (any, error) {
		if strings.HasPrefix(ls[pos].text, "- ") || ls[pos].text == "-" {
			var list []any
			for pos < len(ls) && ls[pos].indent == indent && strings.HasPrefix(ls[pos].text, "- ") {
				l := ls[pos]
				pos++
				item := strings.TrimSpace(l.text[2:])
				if k, _, ok := strings.Cut(item, ":"); ok && !strings.ContainsAny(k, " \"'") {
					m := map[string]any{}
					if err := entry(m, item, indent+2, l.no); err != nil {
						return nil, err
					}
					for pos < len(ls) && ls[pos].indent == indent+2 && !strings.HasPrefix(ls[pos].text, "- ") {
						l2 := ls[pos]
						pos++
						if err := entry(m, l2.text, indent+2, l2.no); err != nil {
							return nil, err
						}
					}
					list = append(list, m)
					continue
				}
				v, err := scalar(item, l.no)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			return list, nil
		}
		m := map[string]any{}
		for pos < len(ls) && ls[pos].indent == indent && !strings.HasPrefix(ls[pos].text, "- ") {
			l := ls[pos]
			pos++
			if err := entry(m, l.text, indent, l.no); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	if len(ls) == 0 {
		return nil, fmt.Errorf("empty document")
	}
	doc, err := block(ls[0].indent)
	if err != nil {
		return nil, err
	}
	if pos != len(ls) {
		return nil, fmt.Errorf("line %d: unexpected indentation", ls[pos].no)
	}
	return doc, nil
}

func TestParseYAMLSubset(t *testing.T) {
	doc, err := parseYAMLSubset("a: 1\nb:\n  - x\n  - k: v\n    j: \"w\"\nc:\n  d: e\n")
	if err != nil {
		t.Fatal(err)
	}
	want := `map[a:1 b:[x map[j:w k:v]] c:map[d:e]]`
	if got := fmt.Sprint(doc); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	for _, bad := range []string{"a: 1\n a2: 2\n", "a: {b: 1}\n", "a: 1\na: 2\n", "- a\nb: 1\n"} {
		if _, err := parseYAMLSubset(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
