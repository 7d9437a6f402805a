package manifests_test

import (
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/internal/deploy"
	"github.com/wardstream/wardstream/schemas/topics"
)

const k8sDir = "../../../deploy/k8s"

// kustomizations are every buildable tree: the base and each overlay.
func kustomizations(t *testing.T) []string {
	t.Helper()
	dirs := []string{filepath.Join(k8sDir, "base")}
	overlays, err := filepath.Glob(filepath.Join(k8sDir, "overlays", "*", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	if len(dirs) < 3 {
		t.Fatalf("want the base and at least two overlays, found %v", dirs)
	}
	return dirs
}

// --- minimal operator kinds: exactly the fields we use -------------------

type kafkaCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Kafka struct {
			Version   string `json:"version"`
			Listeners []struct {
				Name           string `json:"name"`
				Port           int32  `json:"port"`
				Type           string `json:"type"`
				TLS            bool   `json:"tls"`
				Authentication *struct {
					Type string `json:"type"`
				} `json:"authentication,omitempty"`
				NetworkPolicyPeers []networkingv1.NetworkPolicyPeer `json:"networkPolicyPeers,omitempty"`
			} `json:"listeners"`
			Authorization *struct {
				Type string `json:"type"`
			} `json:"authorization,omitempty"`
			Config map[string]any `json:"config,omitempty"`
			Rack   *struct {
				TopologyKey string `json:"topologyKey"`
			} `json:"rack,omitempty"`
		} `json:"kafka"`
		EntityOperator *struct {
			TopicOperator *struct{} `json:"topicOperator,omitempty"`
			UserOperator  *struct{} `json:"userOperator,omitempty"`
		} `json:"entityOperator,omitempty"`
	} `json:"spec"`
}

type kafkaNodePoolCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Replicas int32    `json:"replicas"`
		Roles    []string `json:"roles"`
		Storage  struct {
			Type    string `json:"type"`
			Volumes []struct {
				ID            int               `json:"id"`
				Type          string            `json:"type"`
				Size          resource.Quantity `json:"size"`
				DeleteClaim   bool              `json:"deleteClaim"`
				KraftMetadata string            `json:"kraftMetadata,omitempty"`
			} `json:"volumes"`
		} `json:"storage"`
		Resources  corev1.ResourceRequirements `json:"resources"`
		JVMOptions *struct {
			Xms string `json:"-Xms"`
			Xmx string `json:"-Xmx"`
		} `json:"jvmOptions,omitempty"`
	} `json:"spec"`
}

type kafkaTopicCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		TopicName  string            `json:"topicName"`
		Partitions int32             `json:"partitions"`
		Replicas   int16             `json:"replicas"`
		Config     map[string]string `json:"config"`
	} `json:"spec"`
}

type kafkaUserCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Authentication struct {
			Type string `json:"type"`
		} `json:"authentication"`
		Authorization struct {
			Type string `json:"type"`
			ACLs []struct {
				Resource struct {
					Type        string `json:"type"`
					Name        string `json:"name,omitempty"`
					PatternType string `json:"patternType,omitempty"`
				} `json:"resource"`
				Operations []string `json:"operations"`
			} `json:"acls"`
		} `json:"authorization"`
	} `json:"spec"`
}

type scaledObjectCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef struct {
			Kind string `json:"kind,omitempty"`
			Name string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount"`
		MaxReplicaCount *int32 `json:"maxReplicaCount"`
		PollingInterval int32  `json:"pollingInterval"`
		CooldownPeriod  int32  `json:"cooldownPeriod"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			MetricType        string            `json:"metricType,omitempty"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

type triggerAuthCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef"`
	} `json:"spec"`
}

type issuerCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

type certificateCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		IsCA        bool             `json:"isCA,omitempty"`
		CommonName  string           `json:"commonName"`
		SecretName  string           `json:"secretName"`
		Duration    *metav1.Duration `json:"duration,omitempty"`
		RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`
		DNSNames    []string         `json:"dnsNames,omitempty"`
		PrivateKey  *struct {
			Algorithm string `json:"algorithm"`
			Size      int    `json:"size"`
		} `json:"privateKey,omitempty"`
		Usages    []string `json:"usages,omitempty"`
		IssuerRef struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

type chTemplates struct {
	PodTemplates []struct {
		Name string         `json:"name"`
		Spec corev1.PodSpec `json:"spec"`
	} `json:"podTemplates"`
	VolumeClaimTemplates []struct {
		Name string                           `json:"name"`
		Spec corev1.PersistentVolumeClaimSpec `json:"spec"`
	} `json:"volumeClaimTemplates"`
	ServiceTemplates []struct {
		Name         string             `json:"name"`
		GenerateName string             `json:"generateName,omitempty"`
		Spec         corev1.ServiceSpec `json:"spec"`
	} `json:"serviceTemplates,omitempty"`
}

type chDefaults struct {
	Templates struct {
		PodTemplate             string `json:"podTemplate"`
		DataVolumeClaimTemplate string `json:"dataVolumeClaimTemplate"`
		ServiceTemplate         string `json:"serviceTemplate,omitempty"`
	} `json:"templates"`
}

type chiCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Defaults      chDefaults `json:"defaults"`
		Configuration struct {
			Zookeeper struct {
				Nodes []struct {
					Host string `json:"host"`
					Port int32  `json:"port"`
				} `json:"nodes"`
			} `json:"zookeeper"`
			Users    map[string]any    `json:"users"`
			Profiles map[string]any    `json:"profiles,omitempty"`
			Settings map[string]any    `json:"settings"`
			Files    map[string]string `json:"files,omitempty"`
			Clusters []struct {
				Name   string `json:"name"`
				Layout struct {
					ShardsCount   int `json:"shardsCount"`
					ReplicasCount int `json:"replicasCount"`
				} `json:"layout"`
			} `json:"clusters"`
		} `json:"configuration"`
		Templates chTemplates `json:"templates"`
	} `json:"spec"`
}

type chkCR struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		Defaults      chDefaults `json:"defaults"`
		Configuration struct {
			Clusters []struct {
				Name   string `json:"name"`
				Layout struct {
					ReplicasCount int `json:"replicasCount"`
				} `json:"layout"`
			} `json:"clusters"`
			Settings map[string]any `json:"settings,omitempty"`
		} `json:"configuration"`
		Templates chTemplates `json:"templates"`
	} `json:"spec"`
}

// workload is a Deployment or StatefulSet: what the checks need of either.
type workload struct {
	Kind, Name string
	Replicas   *int32
	Selector   *metav1.LabelSelector
	Template   corev1.PodTemplateSpec
	// ServiceName is a StatefulSet's governing service.
	ServiceName string
}

// built is one kustomize build, decoded.
type built struct {
	dir           string
	deployments   []workload
	jobs          []batchv1.Job
	services      []corev1.Service
	configMaps    []corev1.ConfigMap
	secrets       []corev1.Secret
	pdbs          []policyv1.PodDisruptionBudget
	netpols       []networkingv1.NetworkPolicy
	kafkas        []kafkaCR
	nodePools     []kafkaNodePoolCR
	kafkaTopics   []kafkaTopicCR
	kafkaUsers    []kafkaUserCR
	scaledObjects []scaledObjectCR
	triggerAuths  []triggerAuthCR
	issuers       []issuerCR
	certificates  []certificateCR
	chis          []chiCR
	chks          []chkCR
	topology      *config.Root
}

func strict(t *testing.T, where string, data []byte, out any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, out); err != nil {
		t.Errorf("%s: %v", where, err)
	}
}

func build(t *testing.T, dir string) *built {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &built{dir: dir}
	for _, r := range m.Resources() {
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		where := fmt.Sprintf("%s: %s %s", dir, r.GetKind(), r.GetName())
		if r.GetNamespace() == "" && !strings.HasSuffix(dir, "base") {
			t.Errorf("%s: no namespace after the overlay", where)
		}
		switch av, kind := r.GetApiVersion(), r.GetKind(); av + " " + kind {
		case "apps/v1 Deployment":
			var o appsv1.Deployment
			strict(t, where, data, &o)
			b.deployments = append(b.deployments, workload{Kind: "Deployment", Name: o.Name, Replicas: o.Spec.Replicas, Selector: o.Spec.Selector, Template: o.Spec.Template})
		case "apps/v1 StatefulSet":
			var o appsv1.StatefulSet
			strict(t, where, data, &o)
			b.deployments = append(b.deployments, workload{Kind: "StatefulSet", Name: o.Name, Replicas: o.Spec.Replicas, Selector: o.Spec.Selector, Template: o.Spec.Template, ServiceName: o.Spec.ServiceName})
		case "batch/v1 Job":
			var o batchv1.Job
			strict(t, where, data, &o)
			b.jobs = append(b.jobs, o)
		case "v1 Service":
			var o corev1.Service
			strict(t, where, data, &o)
			b.services = append(b.services, o)
		case "v1 ServiceAccount":
			var o corev1.ServiceAccount
			strict(t, where, data, &o)
		case "v1 ConfigMap":
			var o corev1.ConfigMap
			strict(t, where, data, &o)
			b.configMaps = append(b.configMaps, o)
		case "v1 Secret":
			var o corev1.Secret
			strict(t, where, data, &o)
			b.secrets = append(b.secrets, o)
		case "policy/v1 PodDisruptionBudget":
			var o policyv1.PodDisruptionBudget
			strict(t, where, data, &o)
			b.pdbs = append(b.pdbs, o)
		case "networking.k8s.io/v1 NetworkPolicy":
			var o networkingv1.NetworkPolicy
			strict(t, where, data, &o)
			b.netpols = append(b.netpols, o)
		case "kafka.strimzi.io/v1beta2 Kafka":
			var o kafkaCR
			strict(t, where, data, &o)
			b.kafkas = append(b.kafkas, o)
		case "kafka.strimzi.io/v1beta2 KafkaNodePool":
			var o kafkaNodePoolCR
			strict(t, where, data, &o)
			b.nodePools = append(b.nodePools, o)
		case deploy.StrimziAPIVersion + " KafkaTopic":
			var o kafkaTopicCR
			strict(t, where, data, &o)
			b.kafkaTopics = append(b.kafkaTopics, o)
		case "kafka.strimzi.io/v1beta2 KafkaUser":
			var o kafkaUserCR
			strict(t, where, data, &o)
			b.kafkaUsers = append(b.kafkaUsers, o)
		case "keda.sh/v1alpha1 ScaledObject":
			var o scaledObjectCR
			strict(t, where, data, &o)
			b.scaledObjects = append(b.scaledObjects, o)
		case "keda.sh/v1alpha1 TriggerAuthentication":
			var o triggerAuthCR
			strict(t, where, data, &o)
			b.triggerAuths = append(b.triggerAuths, o)
		case "cert-manager.io/v1 Issuer":
			var o issuerCR
			strict(t, where, data, &o)
			b.issuers = append(b.issuers, o)
		case "cert-manager.io/v1 Certificate":
			var o certificateCR
			strict(t, where, data, &o)
			b.certificates = append(b.certificates, o)
		case "clickhouse.altinity.com/v1 ClickHouseInstallation":
			var o chiCR
			strict(t, where, data, &o)
			b.chis = append(b.chis, o)
		case "clickhouse-keeper.altinity.com/v1 ClickHouseKeeperInstallation":
			var o chkCR
			strict(t, where, data, &o)
			b.chks = append(b.chks, o)
		default:
			t.Errorf("%s: apiVersion %s kind %s is not one this test knows how to check", where, av, kind)
		}
	}
	for _, cm := range b.configMaps {
		if strings.HasPrefix(cm.Name, "wardstream-topology") {
			root, err := config.Parse([]byte(cm.Data["topology.yaml"]))
			if err != nil {
				t.Fatalf("%s: topology in ConfigMap %s: %v", dir, cm.Name, err)
			}
			if ps := deploy.CrossCheck(parseNode(t, cm.Data["topology.yaml"])); len(ps) > 0 {
				t.Errorf("%s: topology cross-references: %v", dir, ps)
			}
			b.topology = root
		}
	}
	if b.topology == nil {
		t.Fatalf("%s: no wardstream-topology ConfigMap", dir)
	}
	return b
}

func TestKustomizeBuilds(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(strings.TrimPrefix(dir, k8sDir+"/"), func(t *testing.T) {
			b := build(t, dir)
			b.checkRoles(t)
			b.checkReferences(t)
			b.checkKafka(t)
			b.checkScaling(t)
			b.checkClickHouse(t)
			b.checkPolicies(t)
		})
	}
}

// externalSecrets are secrets the build references but does not contain,
// with who creates them.
func (b *built) externalSecrets() map[string]string {
	ext := map[string]string{
		"wardstream-clickhouse": "the operator (runbook: kubectl create secret, keys password and bi-password)",
		"wardstream-mqtt":       "the operator (runbook: kubectl create secret, key password)",
		"wardstream-mqtt-tls":   "the operator, from the hospital MQTT broker's CA (ca.crt, tls.crt, tls.key)",
	}
	for _, k := range b.kafkas {
		ext[k.Metadata.Name+"-cluster-ca-cert"] = "Strimzi (cluster CA of Kafka " + k.Metadata.Name + ")"
	}
	for _, u := range b.kafkaUsers {
		ext[u.Metadata.Name] = "Strimzi (KafkaUser " + u.Metadata.Name + ")"
	}
	for _, c := range b.certificates {
		ext[c.Spec.SecretName] = "cert-manager (Certificate " + c.Metadata.Name + ")"
	}
	return ext
}

func (b *built) secretKnown(name string) bool {
	for _, s := range b.secrets {
		if s.Name == name {
			return true
		}
	}
	_, ok := b.externalSecrets()[name]
	return ok
}

func (b *built) configMapKnown(name string) bool {
	for _, c := range b.configMaps {
		if c.Name == name {
			return true
		}
	}
	return false
}

func (b *built) checkPodSpec(t *testing.T, where string, spec corev1.PodSpec) {
	t.Helper()
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
		switch {
		case v.ConfigMap != nil && !b.configMapKnown(v.ConfigMap.Name):
			t.Errorf("%s: volume %s: ConfigMap %q is not in the build", where, v.Name, v.ConfigMap.Name)
		case v.Secret != nil && !b.secretKnown(v.Secret.SecretName):
			t.Errorf("%s: volume %s: Secret %q is neither built nor issued by an operator", where, v.Name, v.Secret.SecretName)
		case v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "wardstream-models":
			t.Errorf("%s: volume %s: PVC %q is not one the runbook creates (wardstream-models)", where, v.Name, v.PersistentVolumeClaim.ClaimName)
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil && !b.secretKnown(s.Secret.Name) {
					t.Errorf("%s: volume %s: Secret %q is neither built nor issued by an operator", where, v.Name, s.Secret.Name)
				}
			}
		}
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				t.Errorf("%s: container %s mounts unknown volume %q", where, c.Name, m.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !b.secretKnown(e.ValueFrom.SecretKeyRef.Name) {
				t.Errorf("%s: env %s: Secret %q is neither built nor issued by an operator", where, e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
		}
		req, lim := c.Resources.Requests, c.Resources.Limits
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			rq, ok1 := req[r]
			lm, ok2 := lim[r]
			if !ok1 || !ok2 {
				t.Errorf("%s: container %s has no %s request and limit", where, c.Name, r)
				continue
			}
			if rq.Cmp(lm) > 0 {
				t.Errorf("%s: container %s: %s request %s above limit %s", where, c.Name, r, rq.String(), lm.String())
			}
		}
	}
}

// mountedDir reports whether file lies under a volume mount of c.
func mountedDir(c corev1.Container, file string) bool {
	for _, m := range c.VolumeMounts {
		if file == m.MountPath || strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return true
		}
	}
	return false
}

var roleNames = []string{"mqtt", "rtsp", "processors", "sink", "api"}

func (b *built) checkRoles(t *testing.T) {
	_, metricsPortStr, err := net.SplitHostPort(b.topology.Telemetry.Listen)
	if err != nil {
		t.Fatalf("telemetry.listen %q: %v", b.topology.Telemetry.Listen, err)
	}
	metricsPort, _ := strconv.Atoi(metricsPortStr)
	seen := map[string]bool{}
	for _, d := range b.deployments {
		where := d.Kind + " " + d.Name
		if d.Kind == "StatefulSet" {
			ok := false
			for _, svc := range b.services {
				ok = ok || (svc.Name == d.ServiceName && svc.Spec.ClusterIP == corev1.ClusterIPNone)
			}
			if !ok {
				t.Errorf("%s: serviceName %q is not a headless Service of the build", where, d.ServiceName)
			}
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Template.Labels)) {
			t.Errorf("%s: selector %v does not select its own pod template (%v)", where, d.Selector, err)
		}
		b.checkPodSpec(t, where, d.Template.Spec)
		if len(d.Template.Spec.Containers) != 1 {
			t.Errorf("%s: want one container", where)
			continue
		}
		c := d.Template.Spec.Containers[0]
		args := c.Args
		if len(args) != 5 || args[0] != "run" || args[1] != "--roles" || args[3] != "--config" {
			t.Errorf("%s: args %v, want run --roles ROLE --config FILE", where, args)
			continue
		}
		role := args[2]
		if !slices.Contains(roleNames, role) {
			t.Errorf("%s: unknown role %q", where, role)
		}
		seen[role] = true
		if d.Template.Labels["app.kubernetes.io/component"] != role {
			t.Errorf("%s: component label %q, runs role %q", where, d.Template.Labels["app.kubernetes.io/component"], role)
		}
		if !mountedDir(c, args[4]) {
			t.Errorf("%s: --config %s is not mounted", where, args[4])
		}
		var metricsName string
		for _, p := range c.Ports {
			if p.ContainerPort == int32(metricsPort) {
				metricsName = p.Name
			}
		}
		if metricsName == "" {
			t.Errorf("%s: no container port %d (telemetry.listen)", where, metricsPort)
		}
		probes := map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe}
		wantPath := map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}
		for kind, p := range probes {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", where, kind)
				continue
			}
			if p.HTTPGet.Path != wantPath[kind] || (p.HTTPGet.Port.StrVal != metricsName && p.HTTPGet.Port.IntValue() != metricsPort) {
				t.Errorf("%s: %s probe %s on %s, want %s on the metrics port", where, kind, p.HTTPGet.Path, p.HTTPGet.Port.String(), wantPath[kind])
			}
		}
		// TLS material named by the topology must be mounted.
		for _, f := range []string{b.topology.Kafka.TLS.CAFile, b.topology.Kafka.TLS.CertFile, b.topology.Kafka.TLS.KeyFile, b.topology.ClickHouse.TLS.CAFile} {
			if f != "" && !mountedDir(c, f) {
				t.Errorf("%s: topology names %s but nothing is mounted there", where, f)
			}
		}
		if role == "mqtt" {
			for _, f := range []string{b.topology.MQTT.TLS.CAFile, b.topology.MQTT.TLS.CertFile, b.topology.MQTT.TLS.KeyFile} {
				if f != "" && !mountedDir(c, f) {
					t.Errorf("%s: topology names %s but nothing is mounted there", where, f)
				}
			}
		}
		if role == "rtsp" {
			var rt struct {
				Detector struct {
					Model string `yaml:"model"`
				} `yaml:"detector"`
				Cameras []struct {
					PasswordEnv string `yaml:"password_env"`
					URLEnv      string `yaml:"url_env"`
				} `yaml:"cameras"`
			}
			_ = b.topology.Connectors.RTSP.Decode(&rt)
			if !mountedDir(c, rt.Detector.Model) && !strings.HasPrefix(rt.Detector.Model, "/usr/share/wardstream/") {
				t.Errorf("%s: detector model %s is neither mounted nor in the image", where, rt.Detector.Model)
			}
			var envs []string
			for _, cam := range rt.Cameras {
				envs = append(envs, cam.PasswordEnv, cam.URLEnv)
			}
			checkEnv(t, where, c, envs)
		}
		if role == "mqtt" {
			// Several instances share one topology: each must get its own
			// client ids (persistent sessions), which the render step
			// derives from the pod name.
			var mq struct {
				ClientID string `yaml:"client_id"`
			}
			_ = b.topology.Connectors.MQTT.Decode(&mq)
			spec := d.Template.Spec
			if d.Kind != "StatefulSet" || len(spec.InitContainers) != 1 || mq.ClientID != "wardstream-mqtt" ||
				!strings.Contains(strings.Join(spec.InitContainers[0].Command, " "), "wardstream-mqtt[[:space:]]*$/\\1'\"$POD_NAME\"'/") {
				t.Errorf("%s: want a StatefulSet whose init container renders connectors.mqtt.client_id %q into the pod name", where, mq.ClientID)
			}
		}
		wantEnv := []string{b.topology.ClickHouse.PasswordEnv}
		if role == "mqtt" {
			wantEnv = append(wantEnv, b.topology.MQTT.PasswordEnv)
		}
		checkEnv(t, where, c, wantEnv)
		if role == "api" {
			var sec struct {
				Listen string `yaml:"listen"`
			}
			_ = b.topology.API.Decode(&sec)
			_, p, _ := net.SplitHostPort(sec.Listen)
			found := false
			for _, cp := range c.Ports {
				found = found || strconv.Itoa(int(cp.ContainerPort)) == p
			}
			if !found {
				t.Errorf("%s: api.listen %q has no container port", where, sec.Listen)
			}
			for _, s := range b.services {
				for _, sp := range s.Spec.Ports {
					if s.Spec.Selector["app.kubernetes.io/component"] == "api" && sp.TargetPort.StrVal != "" && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == sp.TargetPort.StrVal }) {
						t.Errorf("Service %s: targetPort %s is not a port of %s", s.Name, sp.TargetPort.StrVal, where)
					}
				}
			}
		}
		if tg := d.Template.Spec.TerminationGracePeriodSeconds; tg == nil || float64(*tg) <= b.topology.DrainTimeout.D().Seconds() {
			t.Errorf("%s: terminationGracePeriodSeconds must exceed drain_timeout %s", where, b.topology.DrainTimeout.D())
		}
	}
	for _, r := range roleNames {
		if !seen[r] {
			t.Errorf("no Deployment runs role %s", r)
		}
	}
	for _, j := range b.jobs {
		b.checkPodSpec(t, "Job "+j.Name, j.Spec.Template.Spec)
		if slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "migrate") {
			// migrate logs in to ClickHouse and creates the BI users.
			want := []string{b.topology.ClickHouse.PasswordEnv}
			var sink struct {
				BIUsers []struct {
					PasswordEnv string `yaml:"password_env"`
				} `yaml:"bi_users"`
			}
			_ = b.topology.Sinks.ClickHouse.Decode(&sink)
			for _, u := range sink.BIUsers {
				want = append(want, u.PasswordEnv)
			}
			checkEnv(t, "Job "+j.Name, j.Spec.Template.Spec.Containers[0], want)
		}
	}
	for _, s := range b.services {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		if !b.selectsPods(sel) {
			t.Errorf("Service %s selects no pods", s.Name)
		}
	}
}

// podLabels are the labels of every pod the build creates, including the
// operator-managed ones we select in policies.
func (b *built) podLabels() []labels.Set {
	var out []labels.Set
	for _, d := range b.deployments {
		out = append(out, d.Template.Labels)
	}
	for _, j := range b.jobs {
		out = append(out, j.Spec.Template.Labels)
	}
	for _, k := range b.kafkas {
		out = append(out, labels.Set{"strimzi.io/cluster": k.Metadata.Name, "strimzi.io/kind": "Kafka"})
	}
	for _, c := range b.chis {
		out = append(out, labels.Set{"clickhouse.altinity.com/chi": c.Metadata.Name})
	}
	for _, c := range b.chks {
		out = append(out, labels.Set{"clickhouse-keeper.altinity.com/chk": c.Metadata.Name})
	}
	return out
}

func (b *built) selectsPods(sel labels.Selector) bool {
	for _, l := range b.podLabels() {
		if sel.Matches(l) {
			return true
		}
	}
	return false
}

func (b *built) checkReferences(t *testing.T) {
	for _, ta := range b.triggerAuths {
		for _, r := range ta.Spec.SecretTargetRef {
			if !b.secretKnown(r.Name) {
				t.Errorf("TriggerAuthentication %s: Secret %q is neither built nor issued by an operator", ta.Metadata.Name, r.Name)
			}
		}
	}
	issuers := map[string]bool{}
	for _, i := range b.issuers {
		issuers[i.Metadata.Name] = true
		if i.Spec.CA != nil && !b.secretKnown(i.Spec.CA.SecretName) {
			t.Errorf("Issuer %s: CA secret %q unknown", i.Metadata.Name, i.Spec.CA.SecretName)
		}
		if (i.Spec.CA == nil) == (i.Spec.SelfSigned == nil) {
			t.Errorf("Issuer %s: want exactly one of ca, selfSigned", i.Metadata.Name)
		}
	}
	for _, c := range b.certificates {
		if c.Spec.IssuerRef.Kind != "Issuer" || !issuers[c.Spec.IssuerRef.Name] {
			t.Errorf("Certificate %s: issuer %s %q is not in the build", c.Metadata.Name, c.Spec.IssuerRef.Kind, c.Spec.IssuerRef.Name)
		}
	}
}

func (b *built) brokers() (count int32) {
	for _, p := range b.nodePools {
		if slices.Contains(p.Spec.Roles, "broker") {
			count += p.Spec.Replicas
		}
	}
	return count
}

func (b *built) checkKafka(t *testing.T) {
	if len(b.kafkas) != 1 {
		t.Fatalf("want one Strimzi Kafka, got %d", len(b.kafkas))
	}
	k := b.kafkas[0]
	name := k.Metadata.Name
	controllers := int32(0)
	for _, p := range b.nodePools {
		if p.Metadata.Labels["strimzi.io/cluster"] != name {
			t.Errorf("KafkaNodePool %s: strimzi.io/cluster %q, the Kafka is %q", p.Metadata.Name, p.Metadata.Labels["strimzi.io/cluster"], name)
		}
		if slices.Contains(p.Spec.Roles, "controller") {
			controllers += p.Spec.Replicas
		}
	}
	if controllers%2 == 0 {
		t.Errorf("Kafka %s: %d KRaft controllers; a quorum wants an odd number", name, controllers)
	}
	brokers := b.brokers()
	rf := b.topology.Kafka.ReplicationFactor
	if int32(rf) > brokers {
		t.Errorf("topology kafka.replication_factor %d exceeds the %d brokers", rf, brokers)
	}
	// The topology's bootstrap address is the TLS listener's service.
	var listenerPort int32
	var listenerAuth string
	for _, l := range k.Spec.Kafka.Listeners {
		if l.TLS {
			listenerPort = l.Port
			if l.Authentication != nil {
				listenerAuth = l.Authentication.Type
			}
		}
	}
	want := fmt.Sprintf("%s-kafka-bootstrap:%d", name, listenerPort)
	if len(b.topology.Kafka.Brokers) != 1 || b.topology.Kafka.Brokers[0] != want {
		t.Errorf("topology kafka.brokers %v, want [%s] (Strimzi's TLS bootstrap service)", b.topology.Kafka.Brokers, want)
	}
	if listenerAuth == "tls" && (b.topology.Kafka.TLS.CertFile == "" || !b.topology.Kafka.TLS.Enabled) {
		t.Errorf("the listener wants client certificates but the topology sends none")
	}
	for _, u := range b.kafkaUsers {
		if u.Metadata.Labels["strimzi.io/cluster"] != name || u.Spec.Authentication.Type != listenerAuth {
			t.Errorf("KafkaUser %s: cluster %q auth %q, want %q %q", u.Metadata.Name, u.Metadata.Labels["strimzi.io/cluster"], u.Spec.Authentication.Type, name, listenerAuth)
		}
	}
	// KafkaTopics are exactly `wardstream topics manifest` for this topology.
	gen, err := deploy.KafkaTopics(b.topology.Kafka, deploy.TopicManifestOptions{Cluster: name})
	if err != nil {
		t.Fatal(err)
	}
	var want2 []kafkaTopicCR
	for _, doc := range strings.Split(string(gen), "\n---\n") {
		var o kafkaTopicCR
		strict(t, "generated", []byte(doc), &o)
		want2 = append(want2, o)
	}
	got := map[string]kafkaTopicCR{}
	for _, kt := range b.kafkaTopics {
		got[kt.Metadata.Name] = kt
		if _, ok := topics.Lookup(kt.Spec.TopicName); !ok {
			t.Errorf("KafkaTopic %s: %q is not a catalog topic", kt.Metadata.Name, kt.Spec.TopicName)
		}
		if kt.Metadata.Labels["strimzi.io/cluster"] != name {
			t.Errorf("KafkaTopic %s: strimzi.io/cluster %q, the Kafka is %q", kt.Metadata.Name, kt.Metadata.Labels["strimzi.io/cluster"], name)
		}
		if int32(kt.Spec.Replicas) > brokers {
			t.Errorf("KafkaTopic %s: %d replicas on %d brokers", kt.Metadata.Name, kt.Spec.Replicas, brokers)
		}
	}
	if len(got) != len(want2) {
		t.Errorf("%d KafkaTopics built, the catalog has %d", len(got), len(want2))
	}
	for _, w := range want2 {
		g, ok := got[w.Metadata.Name]
		if !ok {
			t.Errorf("KafkaTopic %s missing", w.Metadata.Name)
			continue
		}
		if g.Spec.Partitions != w.Spec.Partitions || g.Spec.Replicas != w.Spec.Replicas || fmt.Sprint(g.Spec.Config) != fmt.Sprint(w.Spec.Config) {
			t.Errorf("KafkaTopic %s: built %+v, `wardstream topics manifest` for this topology gives %+v", w.Metadata.Name, g.Spec, w.Spec)
		}
	}
}

func (b *built) deployment(name string) *workload {
	for i := range b.deployments {
		if b.deployments[i].Name == name {
			return &b.deployments[i]
		}
	}
	return nil
}

func (b *built) checkScaling(t *testing.T) {
	s, err := deploy.DecodeScaling(b.topology)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	hints := map[string]deploy.RoleScaling{"mqtt": s.MQTT, "rtsp": s.RTSP, "processors": s.Processors, "sink": s.Sink, "api": s.API}
	for role, h := range hints {
		d := b.deployment("wardstream-" + role)
		if d == nil {
			continue // checkRoles reports it
		}
		if d.Replicas == nil || int(*d.Replicas) != h.Replicas {
			t.Errorf("%s %s: replicas %v, topology scaling.%s.replicas %d", d.Kind, d.Name, d.Replicas, role, h.Replicas)
		}
	}
	groups := map[string]bool{topics.GroupAdherence: true, topics.GroupAnomaly: true, topics.GroupAlerts: true,
		topics.GroupCorrelation: true, topics.GroupShadows: true, topics.GroupCommands: true, topics.GroupSink: true}
	auths := map[string]bool{}
	for _, ta := range b.triggerAuths {
		auths[ta.Metadata.Name] = true
	}
	scaled := map[string]bool{}
	for _, so := range b.scaledObjects {
		where := "ScaledObject " + so.Metadata.Name
		d := b.deployment(so.Spec.ScaleTargetRef.Name)
		kind := so.Spec.ScaleTargetRef.Kind
		if kind == "" {
			kind = "Deployment" // KEDA's default
		}
		if d == nil || d.Kind != kind {
			t.Errorf("%s: target %s %q is not in the build", where, kind, so.Spec.ScaleTargetRef.Name)
			continue
		}
		role := d.Template.Labels["app.kubernetes.io/component"]
		scaled[role] = true
		h := hints[role]
		if so.Spec.MinReplicaCount == nil || so.Spec.MaxReplicaCount == nil {
			t.Errorf("%s: min and max replica counts must be set", where)
			continue
		}
		if int(*so.Spec.MinReplicaCount) != h.Replicas || int(*so.Spec.MaxReplicaCount) != max(h.MaxReplicas, h.Replicas) {
			t.Errorf("%s: %d..%d replicas, topology scaling.%s says %d..%d", where, *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount, role, h.Replicas, h.MaxReplicas)
		}
		for i, tr := range so.Spec.Triggers {
			tw := fmt.Sprintf("%s: trigger %d", where, i)
			if role == "mqtt" || role == "api" {
				// Not consumer-group roles: they scale on CPU.
				if v, err := strconv.Atoi(tr.Metadata["value"]); tr.Type != "cpu" || tr.MetricType != "Utilization" || err != nil || v < 10 || v > 95 {
					t.Errorf("%s: want a cpu Utilization trigger with a value in 10..95, got %+v", tw, tr)
				}
				if h.LagThreshold != 0 {
					t.Errorf("%s: topology gives %s a lag threshold, but it scales on CPU", tw, role)
				}
				continue
			}
			if tr.Type != "kafka" {
				t.Errorf("%s: type %q, want kafka (consumer lag)", tw, tr.Type)
				continue
			}
			if tr.Metadata["bootstrapServers"] != strings.Join(b.topology.Kafka.Brokers, ",") {
				t.Errorf("%s: bootstrapServers %q, topology kafka.brokers %v", tw, tr.Metadata["bootstrapServers"], b.topology.Kafka.Brokers)
			}
			if !groups[tr.Metadata["consumerGroup"]] {
				t.Errorf("%s: consumerGroup %q is not a catalog group", tw, tr.Metadata["consumerGroup"])
			}
			if role == "sink" {
				sink := struct {
					Group string `yaml:"group"`
				}{Group: topics.GroupSink}
				_ = b.topology.Sinks.ClickHouse.Decode(&sink)
				if tr.Metadata["consumerGroup"] != sink.Group {
					t.Errorf("%s: consumerGroup %q, the sink consumes as sinks.clickhouse.group %q", tw, tr.Metadata["consumerGroup"], sink.Group)
				}
			}
			if tr.Metadata["lagThreshold"] != strconv.FormatInt(h.LagThreshold, 10) {
				t.Errorf("%s: lagThreshold %q, topology scaling.%s.lag_threshold %d", tw, tr.Metadata["lagThreshold"], role, h.LagThreshold)
			}
			if tr.AuthenticationRef == nil || !auths[tr.AuthenticationRef.Name] {
				t.Errorf("%s: authenticationRef must name a TriggerAuthentication of the build", tw)
			}
		}
	}
	// The processors' lag triggers are exactly the goka groups the
	// topology's pipelines section runs.
	pipes := struct {
		Groups      []string `yaml:"groups"`
		TopicPrefix string   `yaml:"topic_prefix"`
		StorageDir  string   `yaml:"storage_dir"`
	}{Groups: []string{"adherence", "anomaly", "alerts"}}
	_ = b.topology.Pipelines.Decode(&pipes)
	var wantGroups, gotGroups []string
	for _, g := range pipes.Groups {
		wantGroups = append(wantGroups, pipes.TopicPrefix+"wardstream-"+g)
	}
	for _, so := range b.scaledObjects {
		if so.Spec.ScaleTargetRef.Name == "wardstream-processors" {
			for _, tr := range so.Spec.Triggers {
				gotGroups = append(gotGroups, tr.Metadata["consumerGroup"])
			}
		}
	}
	slices.Sort(wantGroups)
	slices.Sort(gotGroups)
	if !slices.Equal(wantGroups, gotGroups) {
		t.Errorf("processors ScaledObject reads lag of groups %v; pipelines.groups runs %v", gotGroups, wantGroups)
	}
	if d := b.deployment("wardstream-processors"); d != nil && pipes.StorageDir != "" && !mountedDir(d.Template.Spec.Containers[0], pipes.StorageDir) {
		t.Errorf("pipelines.storage_dir %s is not on a volume of the processors (the root filesystem is read-only)", pipes.StorageDir)
	}
	for _, role := range []string{"processors", "sink"} {
		if !scaled[role] {
			t.Errorf("no ScaledObject scales %s on consumer lag", role)
		}
	}
	for role, h := range hints {
		if h.MaxReplicas > h.Replicas && !scaled[role] {
			t.Errorf("topology scaling.%s allows %d..%d instances but no ScaledObject scales it", role, h.Replicas, h.MaxReplicas)
		}
	}
	if err := s.Check(b.topology.Kafka, 0); err != nil {
		t.Error(err)
	}
}

func (b *built) checkClickHouse(t *testing.T) {
	if len(b.chis) != 1 || len(b.chks) != 1 {
		t.Fatalf("want one ClickHouseInstallation and one ClickHouseKeeperInstallation, got %d and %d", len(b.chis), len(b.chks))
	}
	chi, chk := b.chis[0], b.chks[0]
	if len(chi.Spec.Configuration.Clusters) != 1 || chi.Spec.Configuration.Clusters[0].Name != b.topology.ClickHouse.Cluster {
		t.Errorf("ClickHouseInstallation clusters %+v, topology clickhouse.cluster %q", chi.Spec.Configuration.Clusters, b.topology.ClickHouse.Cluster)
	} else if l := chi.Spec.Configuration.Clusters[0].Layout; (l.ShardsCount != 1 && !b.topology.ClickHouse.Sharded) || l.ReplicasCount < 2 {
		// Without clickhouse.sharded, schemas/clickhouse creates replicated
		// tables and no Distributed tables: rows on a second shard would be
		// invisible to queries.
		t.Errorf("ClickHouse layout %+v: want 1 shard unless the topology sets clickhouse.sharded, and >= 2 replicas", l)
	}
	if n := chi.Spec.Configuration.Zookeeper.Nodes; len(n) != 1 || n[0].Host != "keeper-"+chk.Metadata.Name || n[0].Port != 2181 {
		t.Errorf("ClickHouse zookeeper %+v, want keeper-%s:2181", n, chk.Metadata.Name)
	}
	if c := chk.Spec.Configuration.Clusters; len(c) != 1 || c[0].Layout.ReplicasCount%2 == 0 {
		t.Errorf("Keeper clusters %+v: want one cluster with an odd number of replicas", c)
	}
	for _, in := range []struct {
		what string
		d    chDefaults
		tpl  chTemplates
	}{{"ClickHouseInstallation", chi.Spec.Defaults, chi.Spec.Templates}, {"ClickHouseKeeperInstallation", chk.Spec.Defaults, chk.Spec.Templates}} {
		found := map[string]bool{}
		for _, p := range in.tpl.PodTemplates {
			found["pod/"+p.Name] = true
			b.checkPodSpec(t, in.what+" podTemplate "+p.Name, p.Spec)
		}
		for _, v := range in.tpl.VolumeClaimTemplates {
			found["vol/"+v.Name] = true
		}
		for _, s := range in.tpl.ServiceTemplates {
			found["svc/"+s.Name] = true
		}
		for _, ref := range []string{"pod/" + in.d.Templates.PodTemplate, "vol/" + in.d.Templates.DataVolumeClaimTemplate} {
			if !found[ref] {
				t.Errorf("%s: default template %s is not defined", in.what, ref)
			}
		}
		if st := in.d.Templates.ServiceTemplate; st != "" && !found["svc/"+st] {
			t.Errorf("%s: service template %s is not defined", in.what, st)
		}
	}
	// The topology connects to the CHI service on a port it exposes, and
	// that port is the secure native port ClickHouse listens on.
	want := "clickhouse-" + chi.Metadata.Name
	secure := fmt.Sprint(chi.Spec.Configuration.Settings["tcp_port_secure"])
	for _, a := range b.topology.ClickHouse.Addr {
		host, port, _ := net.SplitHostPort(a)
		if host != want || port != secure {
			t.Errorf("topology clickhouse.addr %s, want %s:%s", a, want, secure)
		}
		exposed := false
		for _, s := range chi.Spec.Templates.ServiceTemplates {
			for _, p := range s.Spec.Ports {
				if strconv.Itoa(int(p.Port)) == port {
					exposed = exposed || strings.Replace(s.GenerateName, "{chi}", chi.Metadata.Name, 1) == host
				}
			}
		}
		if !exposed {
			t.Errorf("no ClickHouse service template exposes %s", a)
		}
	}
	if b.topology.ClickHouse.TLS.Enabled && b.topology.ClickHouse.TLS.ServerName != "" {
		ok := false
		for _, c := range b.certificates {
			ok = ok || (slices.Contains(c.Spec.DNSNames, b.topology.ClickHouse.TLS.ServerName))
		}
		if !ok {
			t.Errorf("no Certificate covers clickhouse tls.server_name %q", b.topology.ClickHouse.TLS.ServerName)
		}
	}
	for user, v := range chi.Spec.Configuration.Users {
		if strings.HasSuffix(user, "/k8s_secret_password") {
			secret, _, _ := strings.Cut(fmt.Sprint(v), "/")
			if !b.secretKnown(secret) {
				t.Errorf("ClickHouse user %s: Secret %q unknown", user, secret)
			}
		}
	}
}

func (b *built) checkPolicies(t *testing.T) {
	for _, p := range b.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || !b.selectsPods(sel) {
			t.Errorf("PodDisruptionBudget %s selects no pods (%v)", p.Name, err)
		}
		if p.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget %s: use maxUnavailable; minAvailable on a single instance blocks node drains", p.Name)
		}
	}
	for _, d := range b.deployments {
		covered := false
		for _, p := range b.pdbs {
			sel, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
			covered = covered || sel.Matches(labels.Set(d.Template.Labels))
		}
		if !covered {
			t.Errorf("%s %s has no PodDisruptionBudget", d.Kind, d.Name)
		}
	}
	for _, np := range b.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !b.selectsPods(sel) {
			t.Errorf("NetworkPolicy %s selects no pods (%v)", np.Name, err)
		}
		for i, e := range np.Spec.Egress {
			for _, peer := range e.To {
				if peer.PodSelector != nil && peer.NamespaceSelector == nil {
					ps, _ := metav1.LabelSelectorAsSelector(peer.PodSelector)
					if !b.selectsPods(ps) {
						t.Errorf("NetworkPolicy %s egress %d: peer %v selects no pods of the build", np.Name, i, peer.PodSelector)
					}
				}
			}
		}
	}
	// Every role pod may reach Kafka on the listener port and ClickHouse
	// on the topology's port.
	kafkaPort := portOf(b.topology.Kafka.Brokers[0])
	chPort := portOf(b.topology.ClickHouse.Addr[0])
	for _, d := range b.deployments {
		pod := labels.Set(d.Template.Labels)
		if !b.egressAllowed(pod, "strimzi.io/kind", kafkaPort) {
			t.Errorf("%s %s: no NetworkPolicy lets it reach Kafka on %d", d.Kind, d.Name, kafkaPort)
		}
		if !b.egressAllowed(pod, "clickhouse.altinity.com/chi", chPort) {
			t.Errorf("%s %s: no NetworkPolicy lets it reach ClickHouse on %d", d.Kind, d.Name, chPort)
		}
	}
}

// checkEnv reports the env vars of want (names from the topology's
// *password_env fields) that c does not set.
func checkEnv(t *testing.T, where string, c corev1.Container, want []string) {
	t.Helper()
	for _, w := range want {
		if w != "" && !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == w }) {
			t.Errorf("%s: the topology reads a password from $%s, which the container does not set", where, w)
		}
	}
}

func portOf(hostport string) int32 {
	_, p, _ := net.SplitHostPort(hostport)
	n, _ := strconv.Atoi(p)
	return int32(n)
}

// egressAllowed reports whether a policy selecting pod allows egress to
// pods carrying label key on port.
func (b *built) egressAllowed(pod labels.Set, key string, port int32) bool {
	for _, np := range b.netpols {
		sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if !sel.Matches(pod) {
			continue
		}
		for _, e := range np.Spec.Egress {
			portOK := false
			for _, p := range e.Ports {
				portOK = portOK || (p.Port != nil && p.Port.IntValue() == int(port))
			}
			for _, peer := range e.To {
				if peer.PodSelector != nil {
					if _, ok := peer.PodSelector.MatchLabels[key]; ok && portOK {
						return true
					}
				}
			}
		}
	}
	return false
}

func TestCommittedKafkaTopicsAreGenerated(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(k8sDir, "base", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := config.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := deploy.KafkaTopics(root.Kafka, deploy.TopicManifestOptions{Cluster: "wardstream"})
	if err != nil {
		t.Fatal(err)
	}
	file := path.Join(k8sDir, "base", "kafka", "topics.yaml")
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is stale; regenerate with:\n  go run ./cmd/wardstream topics manifest --config deploy/k8s/base/topology.yaml --cluster wardstream --out deploy/k8s/base/kafka/topics.yaml", file)
	}
}
