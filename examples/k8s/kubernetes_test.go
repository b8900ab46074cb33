// Package k8s checks examples/kubernetes.yaml against the Kubernetes API types and tender's own
// configuration, so that the example cannot rot. It is a module of its own: tender itself does
// not depend on Kubernetes.
package k8s

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/tenderinit/tender/config"
)

// manifests reads the YAML documents of the example, each decoded strictly by its kind: a
// field the API does not know, or a wrong type, fails.
func manifests(t *testing.T) (deployments []appsv1.Deployment, services []corev1.Service) {
	t.Helper()
	b, err := os.ReadFile("../kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for i, doc := range bytes.Split(b, []byte("\n---\n")) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		switch head.Kind {
		case "Deployment":
			var d appsv1.Deployment
			if err := yaml.UnmarshalStrict(doc, &d); err != nil {
				t.Fatalf("document %d, a Deployment: %v", i, err)
			}
			deployments = append(deployments, d)
		case "Service":
			var s corev1.Service
			if err := yaml.UnmarshalStrict(doc, &s); err != nil {
				t.Fatalf("document %d, a Service: %v", i, err)
			}
			services = append(services, s)
		default:
			t.Fatalf("document %d: unexpected kind %q", i, head.Kind)
		}
	}
	return deployments, services
}

func TestKubernetesExample(t *testing.T) {
	deployments, services := manifests(t)
	if len(deployments) != 1 || len(services) != 1 {
		t.Fatalf("%d deployments and %d services, want one of each", len(deployments), len(services))
	}
	d := deployments[0]
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// The settings are tender's, read by tender's own parser: a misspelt or invalid one fails.
	var env []string
	for _, e := range c.Env {
		env = append(env, e.Name+"="+e.Value)
	}
	cfg, err := config.Load(append(c.Args, "--", "/usr/local/bin/demo"), env)
	if err != nil {
		t.Fatalf("tender refuses the example's settings: %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("tender warns about the example's settings: %v", cfg.Warnings)
	}
	if !cfg.WorkersAuto {
		t.Errorf("TENDER_WORKERS is not auto")
	}
	if _, ok := c.Resources.Limits[corev1.ResourceCPU]; !ok {
		t.Errorf("no CPU limit: TENDER_WORKERS=auto would size the pool to the node")
	}

	// SIGTERM comes while the endpoints still route to the pod: tender keeps serving for the
	// shutdown delay, then stops gracefully within the stop timeout, and all of it must end
	// before the kubelet's SIGKILL.
	if cfg.ShutdownDelay == 0 {
		t.Errorf("no TENDER_SHUTDOWN_DELAY")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if need := cfg.ShutdownDelay + cfg.StopTimeout + time.Second; grace < need {
		t.Errorf("terminationGracePeriodSeconds %v is less than TENDER_SHUTDOWN_DELAY %v + TENDER_STOP_TIMEOUT %v + 1s", grace, cfg.ShutdownDelay, cfg.StopTimeout)
	}

	// Readiness through /healthz on TENDER_ADMIN, liveness through tender health.
	rp := c.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/healthz" {
		t.Fatalf("the readiness probe is not an HTTP GET of /healthz: %+v", rp)
	}
	if cfg.Admin == nil || !strings.HasSuffix(cfg.Admin.Addr, ":"+portOf(t, c, rp.HTTPGet.Port.String())) {
		t.Errorf("the readiness probe's port %s is not TENDER_ADMIN's (%v)", rp.HTTPGet.Port.String(), cfg.Admin)
	}
	lp := c.LivenessProbe
	if lp == nil || lp.Exec == nil || strings.Join(lp.Exec.Command, " ") != "/usr/local/bin/tender health" {
		t.Errorf("the liveness probe is not tender health: %+v", lp)
	}

	// The Service sends to the front socket.
	s := services[0]
	if len(s.Spec.Ports) != 1 || cfg.Listen == nil || !strings.HasSuffix(cfg.Listen.Addr, ":"+portOf(t, c, s.Spec.Ports[0].TargetPort.String())) {
		t.Errorf("the Service's target port is not TENDER_LISTEN's (%v)", cfg.Listen)
	}
	if len(s.Spec.Selector) == 0 {
		t.Errorf("the Service selects no pods")
	}
	for k, v := range s.Spec.Selector {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("the Service selects %s=%s, which the pods do not have", k, v)
		}
	}
}

// portOf is the number of a container port given by name or number.
func portOf(t *testing.T, c corev1.Container, port string) string {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == port {
			return strconv.Itoa(int(p.ContainerPort))
		}
	}
	return port
}
