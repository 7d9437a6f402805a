package deploy

import (
	"errors"
	"fmt"
	"math"

	"github.com/wardstream/wardstream/internal/config"
	"github.com/wardstream/wardstream/schemas/topics"
)

// RoleScaling is the scaling hint for one role: how many instances run and
// how far an autoscaler may take them. The Kubernetes manifests in
// deploy/k8s carry the same numbers (KEDA ScaledObject bounds); wardstream
// itself only validates them against the topology.
type RoleScaling struct {
	// Replicas is the steady number of instances (0: the role is not
	// deployed). Default 1.
	Replicas int `yaml:"replicas"`
	// MaxReplicas bounds autoscaling; 0 means Replicas (no autoscaling).
	// A consumer group uses at most one consumer per partition, so for
	// processors it may not exceed the partitions of their input topics.
	MaxReplicas int `yaml:"max_replicas"`
	// LagThreshold is the consumer-group lag (records) per instance above
	// which the autoscaler adds an instance (processors and sink only;
	// 0 disables lag scaling).
	LagThreshold int64 `yaml:"lag_threshold"`
}

// Scaling is the topology's "scaling" section: per-role hints.
type Scaling struct {
	MQTT       RoleScaling `yaml:"mqtt"`
	RTSP       RoleScaling `yaml:"rtsp"`
	Processors RoleScaling `yaml:"processors"`
	Sink       RoleScaling `yaml:"sink"`
	API        RoleScaling `yaml:"api"`
	// CamerasPerRTSPInstance is how many cameras one rtsp instance is
	// sized for (16 per core is the issue-6 target at 5 fps detection).
	CamerasPerRTSPInstance int `yaml:"cameras_per_rtsp_instance"`
}

// DefaultScaling returns one instance per role and no autoscaling.
func DefaultScaling() Scaling {
	one := RoleScaling{Replicas: 1}
	return Scaling{MQTT: one, RTSP: one, Processors: one, Sink: one, API: one, CamerasPerRTSPInstance: 16}
}

// ScalingSection is the topology path of [Scaling].
const ScalingSection = "scaling"

// DecodeScaling strictly decodes the scaling section of root over
// [DefaultScaling]; it does not validate (see [Scaling.Validate] and
// [Scaling.Check]).
func DecodeScaling(root *config.Root) (Scaling, error) {
	s := DefaultScaling()
	err := config.Section(&root.Scaling, ScalingSection, &s)
	return s, err
}

func (r RoleScaling) max() int {
	if r.MaxReplicas == 0 {
		return r.Replicas
	}
	return r.MaxReplicas
}

// Validate checks the hints on their own; errors carry "scaling.<role>"
// paths and are joined.
func (s Scaling) Validate() error {
	var errs []error
	for _, r := range s.roles() {
		p := ScalingSection + "." + r.name
		if r.s.Replicas < 0 {
			errs = append(errs, fmt.Errorf("%s.replicas: must be >= 0", p))
		}
		if r.s.MaxReplicas != 0 && r.s.MaxReplicas < r.s.Replicas {
			errs = append(errs, fmt.Errorf("%s.max_replicas: %d is below replicas %d", p, r.s.MaxReplicas, r.s.Replicas))
		}
		if r.s.LagThreshold < 0 {
			errs = append(errs, fmt.Errorf("%s.lag_threshold: must be >= 0", p))
		}
		if r.s.LagThreshold > 0 && r.name != "processors" && r.name != "sink" {
			errs = append(errs, fmt.Errorf("%s.lag_threshold: only processors and sink scale on consumer lag", p))
		}
	}
	if s.CamerasPerRTSPInstance < 1 {
		errs = append(errs, fmt.Errorf("%s.cameras_per_rtsp_instance: must be >= 1", ScalingSection))
	}
	return errors.Join(errs...)
}

type namedScaling struct {
	name string
	s    RoleScaling
}

func (s Scaling) roles() []namedScaling {
	return []namedScaling{{"mqtt", s.MQTT}, {"rtsp", s.RTSP}, {"processors", s.Processors}, {"sink", s.Sink}, {"api", s.API}}
}

// processorInputs are the topics the goka processors consume; the group
// with the fewest partitions bounds useful processor instances.
var processorInputs = []string{topics.Intake, topics.Schedules, topics.Vitals, topics.VitalsBatches, topics.DeviceStatus, topics.AlertAcks, topics.DoseOutcomes}

// Check compares the hints with the rest of the topology: processor
// instances beyond the partitions of their input topics would sit idle,
// and the camera count needs enough rtsp instances. cameras is the number
// of cameras the topology declares.
func (s Scaling) Check(k config.Kafka, cameras int) error {
	var errs []error
	minParts := int32(math.MaxInt32)
	minTopic := ""
	for _, name := range processorInputs {
		t, ok := topics.Lookup(name)
		if !ok {
			continue
		}
		p := t.Partitions
		if k.Partitions > 0 {
			p = k.Partitions
		}
		if p < minParts {
			minParts, minTopic = p, name
		}
	}
	if minTopic != "" && int32(s.Processors.max()) > minParts {
		// Raising partitions later remaps keys and breaks the goka tables'
		// co-partitioning, so the advice is to plan partitions up-front.
		errs = append(errs, fmt.Errorf("%s.processors.max_replicas: %d instances exceed the %d partitions of %s; the extra instances would idle (size kafka.partitions for the largest scale before the first deploy: see deploy/README.md)",
			ScalingSection, s.Processors.max(), minParts, minTopic))
	}
	if cameras > 0 && s.CamerasPerRTSPInstance > 0 {
		need := (cameras + s.CamerasPerRTSPInstance - 1) / s.CamerasPerRTSPInstance
		if s.RTSP.max() < need {
			errs = append(errs, fmt.Errorf("%s.rtsp.replicas: %d cameras at %d per instance need %d rtsp instances, the hints allow %d",
				ScalingSection, cameras, s.CamerasPerRTSPInstance, need, s.RTSP.max()))
		}
	}
	return errors.Join(errs...)
}
